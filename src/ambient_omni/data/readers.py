"""Readers: Fashion-MNIST IDX files, numpy arrays, scikit-image crops; and :func:`read_source`, which reads
any source spec (image folders and zip archives through :mod:`ambient_omni.data.image_files`).

Every reader returns an :class:`~ambient_omni.data.imageset.ImageSet` (float32 in ``[-1, 1]``,
``(N, C, H, W)``). Bad input raises :class:`~ambient_omni.errors.AmbientError` naming the file
and the problem; no file is ever skipped silently.

Source specs understood by :func:`read_source` (one string per source)::

    fashion-mnist            the Fashion-MNIST train split (same as fashion-mnist:train)
    fashion-mnist:train      60,000 images, 28x28x1, labels 0..9
    fashion-mnist:test       10,000 images
    folder:PATH              PNG/JPEG/... files under PATH, recursively, sorted
    zip:PATH                 the same inside a zip archive
    array:PATH               a .npy (images) or .npz (keys images [+ labels]) file
    skimage:N:SIZE[:SEED[:CHANNELS]]
                             N random SIZE (e.g. 32 or 32x48) crops of scikit-image photos
    PATH                     an existing folder, .zip, .npy or .npz (type from the path)

Options follow as ``@key=value`` suffixes (any order, several allowed):

    @class=7  @class=Sneaker  @class=5,7   keep only these classes (label numbers or names)
    @mode=L   @mode=RGB                   convert folder/zip images to 1 or 3 channels
"""

from __future__ import annotations

import gzip
import os
import re
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ambient_omni.data.image_files import check_mode, read_image_folder, read_zip
from ambient_omni.data.imageset import ImageSet, from_uint8
from ambient_omni.errors import AmbientError

FASHION_MNIST_ENV = "AMBIENT_FASHION_MNIST_DIR"
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SKIMAGE_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "camera", "coins", "moon", "brick", "grass",
                  "gravel", "clock"]
_IDX_DTYPES = {0x08: np.uint8}

SOURCE_FORMS = ("fashion-mnist[:train|:test], folder:PATH, zip:PATH, array:PATH, "
                "skimage:N:SIZE[:SEED[:CHANNELS]], or an existing folder/.zip/.npy/.npz path; "
                "options as suffixes @class=C[,C...] and @mode=L|RGB")


# ----------------------------------------------------------------------------- IDX / Fashion-MNIST

def read_idx(path: str | os.PathLike, expected_ndim: int) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic ``00 00 08 ndim``, big-endian int32 dims, data.

    Checks the magic number, the number of dimensions and that the payload has exactly
    ``prod(dims)`` bytes (truncated or padded files are errors).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise AmbientError(f"{path}: cannot read IDX file ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise AmbientError(f"{path}: not an IDX file of unsigned bytes (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    if ndim != expected_ndim:
        raise AmbientError(f"{path}: IDX file has {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AmbientError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise AmbientError(f"{path}: IDX payload has {len(raw) - header} bytes, dims {dims} need "
                           f"{expected} (truncated or corrupt file)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    """``root/stem.gz`` or ``root/stem``; error naming both when neither exists."""
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise AmbientError(f"{root}: missing Fashion-MNIST file {stem}(.gz); install the Debian package "
                       f"dataset-fashion-mnist or set ${FASHION_MNIST_ENV}")


def read_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> ImageSet:
    """Fashion-MNIST ``split`` ("train": 60k, "test": 10k) as 28x28x1 images with labels 0..9.

    ``root`` defaults to ``$AMBIENT_FASHION_MNIST_DIR``, then ``/usr/share/datasets/fashion-mnist``.
    """
    if split not in ("train", "test"):
        raise AmbientError(f"fashion-mnist split must be 'train' or 'test', got {split!r}")
    root = Path(root or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DEFAULT_DIR)
    prefix = "train" if split == "train" else "t10k"
    images_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if labels.shape[0] != images.shape[0]:
        raise AmbientError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images "
                           f"in {images_path}")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise AmbientError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    names = [f"fashion-mnist:{split}/{i}" for i in range(images.shape[0])]
    return ImageSet(from_uint8(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64)),
                    names, list(FASHION_MNIST_CLASSES))


# ----------------------------------------------------------------------------- numpy arrays

def _channels_first(array: np.ndarray, path: Path) -> np.ndarray:
    """Return ``(N, C, H, W)``: 3-D is ``(N, H, W)`` grayscale; 4-D is NCHW or NHWC by the
    channel axis (size 1 or 3); a shape where both or neither axis could be it is an error."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim != 4:
        raise AmbientError(f"{path}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C), "
                           f"got shape {array.shape}")
    nchw, nhwc = array.shape[1] in (1, 3), array.shape[3] in (1, 3)
    if nchw and nhwc:
        raise AmbientError(f"{path}: ambiguous image shape {array.shape}: axis 1 and axis 3 could "
                           "both be the channel axis; transpose to (N, C, H, W) with H, W > 3")
    if not (nchw or nhwc):
        raise AmbientError(f"{path}: image shape {array.shape} has no channel axis of size 1 or 3")
    return array if nchw else array.transpose(0, 3, 1, 2)


def _to_unit_range(array: np.ndarray, path: Path, value_range: tuple[float, float] | None) -> torch.Tensor:
    """Float32 in [-1, 1] from uint8 (or integer codes 0..255) or floats.

    Floats: an explicit ``value_range`` (0, 1) or (-1, 1) wins; otherwise values with any
    negative entry are read as [-1, 1] and non-negative values as [0, 1]. Values outside the
    range, NaN or infinity are errors.
    """
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer)
                                       or np.issubdtype(array.dtype, np.floating)):
        raise AmbientError(f"{path}: images have unsupported dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise AmbientError(f"{path}: integer images must lie in 0..255, found "
                               f"{array.min()}..{array.max()}")
        return from_uint8(np.ascontiguousarray(array, dtype=np.uint8))
    values = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if not torch.isfinite(values).all():
        raise AmbientError(f"{path}: images contain NaN or infinity")
    low, high = (float(values.min()), float(values.max())) if values.numel() else (0.0, 0.0)
    if value_range is None:
        value_range = (-1.0, 1.0) if low < 0 else (0.0, 1.0)
    if value_range not in ((0.0, 1.0), (-1.0, 1.0)):
        raise AmbientError(f"value_range must be (0, 1) or (-1, 1), got {value_range}")
    if low < value_range[0] or high > value_range[1]:
        raise AmbientError(f"{path}: float images span [{low:.4g}, {high:.4g}], outside the "
                           f"value range {list(value_range)}")
    return values if value_range[0] < 0 else values.mul(2.0).sub(1.0)


def read_array(path: str | os.PathLike, value_range: tuple[float, float] | None = None) -> ImageSet:
    """Images from ``.npy`` (the array is the images) or ``.npz`` (keys ``images`` [+ ``labels``]).

    Layout: see :func:`_channels_first`; values: see :func:`_to_unit_range`. Pickled object
    arrays are refused (``allow_pickle=False``). Labels must be integers >= -1, one per image.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise AmbientError(f"{path}: cannot read numpy file ({err})") from None
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "images" not in loaded.files:
                raise AmbientError(f"{path}: .npz needs an 'images' array, found keys {loaded.files}")
            try:
                images = loaded["images"]
                labels = loaded["labels"] if "labels" in loaded.files else None
            except ValueError as err:
                raise AmbientError(f"{path}: cannot read array ({err})") from None
    else:
        images = loaded
    images = _to_unit_range(_channels_first(images, path), path, value_range)
    n = images.shape[0]
    if labels is None:
        label_tensor = torch.full((n,), -1, dtype=torch.int64)
    else:
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or (n and labels.min() < -1):
            raise AmbientError(f"{path}: 'labels' must be {n} integers >= -1, got {labels.dtype} "
                               f"shape {labels.shape}")
        label_tensor = torch.from_numpy(labels.astype(np.int64))
    return ImageSet(images.contiguous(), label_tensor, [f"{path.name}[{i}]" for i in range(n)])


# ----------------------------------------------------------------------------- scikit-image crops

@lru_cache(maxsize=1)
def _skimage_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """The bundled scikit-image photos that load offline, as ``(name, uint8 (H, W, 3) or (H, W))``."""
    import skimage.data

    photos = []
    for name in SKIMAGE_PHOTOS:
        try:
            photos.append((name, np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)))
        except (AttributeError, OSError, ModuleNotFoundError, ValueError):
            continue
    if not photos:
        raise AmbientError("scikit-image: none of its bundled photos could be loaded")
    return tuple(photos)


def _with_channels(photo: np.ndarray, channels: int) -> np.ndarray:
    """``(C, H, W)`` uint8: gray replicated to 3 channels, or RGB to luma 0.299 R + 0.587 G + 0.114 B."""
    if photo.ndim == 2:
        return np.repeat(photo[None], channels, axis=0)
    if channels == 3:
        return photo.transpose(2, 0, 1)
    luma = photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[None]


def skimage_crops(n: int, size: int | tuple[int, int], seed: int, channels: int = 3) -> ImageSet:
    """``n`` random ``size`` crops (int or ``(h, w)``) of the scikit-image photos.

    Crop ``i`` uses row ``i`` of ``default_rng(seed).random((n, 3))``: column 0 picks the photo
    (uniformly among those at least ``size`` large), columns 1-2 the top-left corner, so crop
    ``i`` depends only on ``(seed, i)``. Labels are -1; names say photo and corner.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if n < 1 or h < 1 or w < 1 or channels not in (1, 3):
        raise AmbientError(f"skimage crops need n >= 1, size >= 1 and channels 1 or 3, got n={n}, "
                           f"size={h}x{w}, channels={channels}")
    photos = [(name, p) for name, p in _skimage_photos() if p.shape[0] >= h and p.shape[1] >= w]
    if not photos:
        raise AmbientError(f"skimage: no bundled photo is at least {h}x{w}")
    draws = np.random.default_rng(seed).random((n, 3))
    codes = np.empty((n, channels, h, w), dtype=np.uint8)
    names = []
    for i, (u_photo, u_y, u_x) in enumerate(draws):
        name, photo = photos[min(int(u_photo * len(photos)), len(photos) - 1)]
        y = min(int(u_y * (photo.shape[0] - h + 1)), photo.shape[0] - h)
        x = min(int(u_x * (photo.shape[1] - w + 1)), photo.shape[1] - w)
        codes[i] = _with_channels(photo[y:y + h, x:x + w], channels)
        names.append(f"skimage/{name}/y{y}x{x}")
    return ImageSet(from_uint8(codes), torch.full((n,), -1, dtype=torch.int64), names)


# ----------------------------------------------------------------------------- source specs

def split_options(spec: str, keys: tuple[str, ...] = ("class", "mode")) -> tuple[str, dict[str, str]]:
    """Split trailing ``@key=value`` options off a spec: ``"a@class=7"`` -> ``("a", {"class": "7"})``."""
    pattern = re.compile(rf"@({'|'.join(map(re.escape, keys))})=([^@]*)$")
    options: dict[str, str] = {}
    while (match := pattern.search(spec)) is not None:
        if match.group(1) in options:
            raise AmbientError(f"source {spec!r}: option @{match.group(1)} given twice")
        options[match.group(1)] = match.group(2)
        spec = spec[: match.start()]
    return spec, options


def canonical_source(spec: str) -> str:
    """``fashion-mnist`` (with or without options) becomes ``fashion-mnist:train``; else unchanged."""
    body, _ = split_options(spec.strip())
    return "fashion-mnist:train" + spec.strip()[len(body):] if body == "fashion-mnist" else spec.strip()


def filter_classes(images: ImageSet, classes: str, spec: str) -> ImageSet:
    """Keep images whose label is one of ``classes`` (comma-separated numbers or class names)."""
    wanted = set()
    lookup = {name.lower(): k for k, name in enumerate(images.class_names)}
    for item in (c.strip() for c in classes.split(",")):
        if re.fullmatch(r"-?\d+", item):
            wanted.add(int(item))
        elif item.lower() in lookup:
            wanted.add(lookup[item.lower()])
        else:
            known = ", ".join(images.class_names) or "none (labels only)"
            raise AmbientError(f"source {spec!r}: unknown class {item!r}; class names: {known}")
    if bool((images.labels < 0).all()):
        raise AmbientError(f"source {spec!r}: @class needs labels, but this source has none")
    keep = torch.nonzero(torch.isin(images.labels, torch.tensor(sorted(wanted)))).flatten()
    if keep.numel() == 0:
        raise AmbientError(f"source {spec!r}: no image has class {classes}")
    return images.subset(keep)


def _read_path(path: Path, mode: str | None, spec: str) -> ImageSet:
    """Pick the reader for an existing path from its type and suffix."""
    if path.is_dir():
        return read_image_folder(path, mode)
    suffix = path.suffix.lower()
    if path.is_file() and suffix == ".zip":
        return read_zip(path, mode)
    if path.is_file() and suffix in (".npy", ".npz"):
        return read_array(path)
    raise AmbientError(f"unknown source {spec!r}; valid forms: {SOURCE_FORMS}")


def _read_skimage(body: str, spec: str) -> ImageSet:
    """``N:SIZE[:SEED[:CHANNELS]]`` with SIZE ``32`` or ``32x48`` (height x width)."""
    match = re.fullmatch(r"(\d+):(\d+)(?:x(\d+))?(?::(\d+))?(?::([13]))?", body)
    if match is None:
        raise AmbientError(f"source {spec!r}: expected skimage:N:SIZE[:SEED[:CHANNELS]], e.g. "
                           "skimage:1000:32:0:3")
    n, h, w, seed, channels = match.groups()
    return skimage_crops(int(n), (int(h), int(w or h)), int(seed or 0), int(channels or 3))


def read_source(spec: str) -> ImageSet:
    """Read the images named by one source spec (forms in the module docstring)."""
    body, options = split_options(spec.strip())
    mode = options.get("mode")
    kind, _, rest = body.partition(":")
    if mode is not None:
        check_mode(mode)
        if kind in ("fashion-mnist", "array", "skimage"):
            raise AmbientError(f"source {spec!r}: @mode applies to folder and zip sources only")
    if kind == "fashion-mnist" and rest in ("", "train", "test"):
        images = read_fashion_mnist(rest or "train")
    elif kind == "folder" and rest:
        images = read_image_folder(rest, mode)
    elif kind == "zip" and rest:
        images = read_zip(rest, mode)
    elif kind == "array" and rest:
        images = read_array(rest)
    elif kind == "skimage":
        images = _read_skimage(rest, spec)
    elif body and Path(body).exists():
        images = _read_path(Path(body), mode, spec)
    else:
        raise AmbientError(f"unknown source {spec!r}; valid forms: {SOURCE_FORMS}")
    if "class" in options:
        images = filter_classes(images, options["class"], spec)
    return images
