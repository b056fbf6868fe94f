"""Image files, in a folder or a zip archive, decoded with Pillow into one
:class:`~ambient_omni.data.imageset.ImageSet` (the ``folder:`` and ``zip:`` sources of
:func:`~ambient_omni.data.readers.read_source`).

Files are read in the order of their relative paths; when every image lies in a subfolder, the
first-level folder names are the classes. Every image is decoded fully, so a truncated one is an
:class:`~ambient_omni.errors.AmbientError` naming it; so are mixed sizes or channel counts, images
claiming more than :data:`MAX_PIXELS`, and zip members that would escape the archive. Non-image files
are ignored with a warning (hidden ones quietly).
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from ambient_omni.data.imageset import ImageSet, from_uint8
from ambient_omni.errors import AmbientError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
_MODE_CHANNELS = {"1": 1, "L": 1, "RGB": 3, "P": 3, "CMYK": 3, "YCbCr": 3}

MAX_PIXELS = 8192 * 8192
"""Largest image (width x height) the folder and zip readers decode: a few hundred bytes of PNG can claim
10,000 x 10,000 pixels and take 1.5 GB once decoded."""

_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _wide_to_uint8(image: Any, name: str) -> np.ndarray:
    """A 16-bit (or 32-bit integer holding 16-bit) grayscale image as uint8 ``(H, W)``:
    ``u8 = round(v * 255 / 65535)``, the full range kept (Pillow's own ``convert("L")`` clips at 255)."""
    wide = np.asarray(image).astype(np.int64)
    if wide.size and (wide.min() < 0 or wide.max() > 65535):
        raise AmbientError(f"{name}: {image.mode} values outside 0..65535 (min {wide.min()}, max {wide.max()})")
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _decode(data: bytes, name: str, mode: str | None) -> np.ndarray:
    """Decode one image fully (``.load()``) to uint8 ``(C, H, W)``; Pillow errors name the file. 16-bit
    grayscale is scaled to 8 bits (:func:`_wide_to_uint8`), also when ``mode`` asks for L or RGB."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # our own limit below replaces Pillow's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            if image.width * image.height > MAX_PIXELS:  # checked from the header, before decoding
                raise AmbientError(f"{name}: {image.width}x{image.height} pixels is more than this reader's limit "
                                   f"of {MAX_PIXELS:,} ({len(data):,} bytes on disk); downscale the image first")
            image.load()
            if image.mode in _WIDE_GRAY:
                gray = _wide_to_uint8(image, name)
                return np.repeat(gray[None], 3, axis=0) if mode == "RGB" else gray[None]
            if mode is not None:
                image = image.convert(mode)
            elif image.mode not in _MODE_CHANNELS:
                raise AmbientError(f"{name}: image mode {image.mode} is not grayscale or RGB; "
                                   f"choose one with mode='L' or mode='RGB' (@mode=... in a source spec)")
            elif image.mode not in ("L", "RGB"):
                image = image.convert("L" if _MODE_CHANNELS[image.mode] == 1 else "RGB")
            array = np.asarray(image, dtype=np.uint8)
    except AmbientError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise AmbientError(f"{name}: unreadable or truncated image ({err})") from None
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def check_mode(mode: str | None) -> None:
    """Raise unless ``mode`` is None, ``"L"`` or ``"RGB"`` (the conversions the readers offer)."""
    if mode not in (None, "L", "RGB"):
        raise AmbientError(f"mode must be 'L' (grayscale) or 'RGB', got {mode!r}")


def _labels_from_paths(rel_paths: list[PurePosixPath]) -> tuple[list[int], list[str]]:
    """Class labels from the first folder level when every image lies in a subfolder, else -1."""
    if not rel_paths or any(len(p.parts) < 2 for p in rel_paths):
        return [-1] * len(rel_paths), []
    classes = sorted({p.parts[0] for p in rel_paths})
    lookup = {c: k for k, c in enumerate(classes)}
    return [lookup[p.parts[0]] for p in rel_paths], classes


def _stack(arrays: list[np.ndarray], names: list[str], where: str) -> np.ndarray:
    """Stack ``(C, H, W)`` arrays; mixed channel counts or sizes name two offending files."""
    first = arrays[0]
    for array, name in zip(arrays, names):
        if array.shape[0] != first.shape[0]:
            raise AmbientError(f"{where}: mixed channel counts: {names[0]} has {first.shape[0]}, {name} "
                               f"has {array.shape[0]}; force one with mode='L' or mode='RGB'")
        if array.shape[1:] != first.shape[1:]:
            raise AmbientError(f"{where}: mixed image sizes: {names[0]} is {first.shape[2]}x{first.shape[1]} "
                               f"(WxH), {name} is {array.shape[2]}x{array.shape[1]}")
    return np.stack(arrays)


def _image_set(items: Iterable[tuple[PurePosixPath, Callable[[], bytes]]], where: str,
               mode: str | None, count: int) -> ImageSet:
    """Decode ``(relative path, loader)`` pairs (already sorted) into an ImageSet."""
    from tqdm import tqdm

    rel_paths, arrays, names = [], [], []
    for rel, load in tqdm(items, total=count, desc=f"reading {where}", unit="img",
                          disable=count < 500, leave=False):
        name = f"{where}/{rel}"
        arrays.append(_decode(load(), name, mode))
        rel_paths.append(rel)
        names.append(str(rel))
    if not arrays:
        raise AmbientError(f"{where}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    codes = _stack(arrays, [f"{where}/{n}" for n in names], where)
    labels, classes = _labels_from_paths(rel_paths)
    return ImageSet(from_uint8(codes), torch.tensor(labels, dtype=torch.int64), names, classes)


def _warn_ignored(where: str, ignored: list[str]) -> None:
    visible = [n for n in ignored if not PurePosixPath(n).name.startswith(".")]
    if visible:
        warnings.warn(f"{where}: ignored {len(visible)} non-image file(s), e.g. {visible[0]}", stacklevel=3)


def read_image_folder(path: str | os.PathLike, mode: str | None = None) -> ImageSet:
    """All image files under ``path`` (recursive, sorted by relative path) as one ImageSet.

    When every image lies in a subfolder, the first-level folder names (sorted) are the classes
    and give the labels; otherwise labels are -1. ``mode`` "L"/"RGB" converts every image;
    without it, grayscale gives 1 channel and RGB 3, and a mix of both is an error. All images
    must have one size (non-square is fine).
    """
    check_mode(mode)
    root = Path(path)
    if not root.is_dir():
        raise AmbientError(f"{root}: not a folder")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    dangling = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink() and not p.exists())
    if dangling:
        warnings.warn(f"{root}: skipped {len(dangling)} dangling symbolic link(s) (their target is missing), "
                      f"e.g. {dangling[0]}", stacklevel=2)
    images = [f for f in files if PurePosixPath(f).suffix.lower() in IMAGE_SUFFIXES]
    _warn_ignored(str(root), sorted(set(files) - set(images)))
    items = [(PurePosixPath(f), (lambda f=f: (root / f).read_bytes())) for f in images]
    return _image_set(items, str(root), mode, len(items))


def _check_member(archive: Path, name: str) -> None:
    """Reject zip member names that would escape the archive (absolute, drive, ``..``)."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in posix.split("/"):
        raise AmbientError(f"{archive}: member {name!r} escapes the archive (absolute path or '..')")


def read_zip(path: str | os.PathLike, mode: str | None = None) -> ImageSet:
    """Images inside a zip archive, with the same rules as :func:`read_image_folder`."""
    check_mode(mode)
    archive = Path(path)
    try:
        handle = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as err:
        raise AmbientError(f"{archive}: cannot open zip archive ({err})") from None
    with handle:
        members = [m for m in handle.infolist() if not m.is_dir()]
        for member in members:
            _check_member(archive, member.filename)
        names = sorted(m.filename for m in members)
        images = [n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
        _warn_ignored(str(archive), sorted(set(names) - set(images)))

        def loader(name: str) -> Callable[[], bytes]:
            def load() -> bytes:
                try:
                    return handle.read(name)
                except (OSError, zipfile.BadZipFile, EOFError) as err:
                    raise AmbientError(f"{archive}/{name}: cannot read zip member ({err})") from None
            return load

        items = [(PurePosixPath(n), loader(n)) for n in images]
        return _image_set(items, str(archive), mode, len(items))
