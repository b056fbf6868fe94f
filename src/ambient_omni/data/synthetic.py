"""Synthetic images (a generative model's samples) as a dataset part with provenance ``synthetic:<model>``.

Synthetic images are low-quality data here (issue 20): like a corrupted image ``y``, a synthetic image is
trusted only at high noise, ``sigma > b * sigma_min`` with its own (or a fixed) ``sigma_min > 0``, where adding
``N(0, sigma^2)`` noise shrinks the distance between the synthetic and the clean distributions (the contraction
of docs/THEORY.md) even where the generator's fine detail is off. So every annotation rule that applies to
``corrupted:*`` images (the fixed sigma_min, the noise classifier's negatives) applies to ``synthetic:*`` ones
too (:data:`~ambient_omni.data.mixed.LOW_QUALITY_KINDS`).

Sources (:func:`read_synthetic`):

- the folder ``ambient sample --out`` wrote, or its ``samples.npz``: ``images`` uint8 ``(N, C, H, W)``,
  optional ``labels`` int ``(N,)`` (class labels of a conditional model, ``-1`` for unconditional samples)
  and ``seeds``; the labels are kept, ``source_index`` is the position in the file;
- any other source spec of :func:`~ambient_omni.data.readers.read_source` (an image folder, ``zip:``,
  ``array:`` for float arrays, ...), e.g. images of another generator saved as PNG files.

``@class=C`` keeps some classes of either kind.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ambient_omni.data.imageset import ImageSet, from_uint8
from ambient_omni.data.readers import filter_classes, read_source, split_options
from ambient_omni.errors import AmbientError

SAMPLES_FILE = "samples.npz"
_MODEL_NAME = re.compile(r"^[^\s@]+$")
_RUN_MARKERS = ("log.jsonl", "checkpoints")
_READER_FORMS = ("fashion-mnist", "folder:", "zip:", "array:", "skimage:")  # read_source specs that are no path


def synthetic_provenance(model: str) -> str:
    """``synthetic:<model>``; the name must be non-empty, without whitespace or ``@``."""
    if not isinstance(model, str) or not _MODEL_NAME.match(model):
        raise AmbientError(f"synthetic images need a model name without spaces or '@' (e.g. @model=edm-fmnist), "
                           f"got {model!r}")
    return f"synthetic:{model}"


def _load_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``images`` and ``labels`` (or None) of a samples file; a missing, truncated or damaged file is an error."""
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as loaded:
            if not isinstance(loaded, np.lib.npyio.NpzFile) or "images" not in loaded.files:
                raise AmbientError(f"{path}: not a samples file (an .npz with an 'images' array, as "
                                   "`ambient sample` writes)")
            return loaded["images"], (loaded["labels"] if "labels" in loaded.files else None)
    except AmbientError:
        raise
    except FileNotFoundError:
        raise AmbientError(f"{path}: no such samples file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise AmbientError(f"{path}: cannot read the samples file, truncated or damaged? ({err})") from None


def read_samples_file(path: str | Path) -> ImageSet:
    """The images and labels of an ``ambient sample`` ``samples.npz`` (see the module docstring)."""
    path = Path(path)
    images, labels = _load_arrays(path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] < 1:
        raise AmbientError(f"{path}: 'images' must be uint8 (N >= 1, C, H, W), got {images.dtype} {images.shape}; "
                           "float images: use an array: source")
    n = images.shape[0]
    if labels is None:
        label_tensor = torch.full((n,), -1, dtype=torch.int64)
    elif labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < -1:
        raise AmbientError(f"{path}: 'labels' must be {n} integers >= -1, got {labels.dtype} shape {labels.shape}")
    else:
        label_tensor = torch.from_numpy(labels.astype(np.int64))
    return ImageSet(from_uint8(np.ascontiguousarray(images)), label_tensor, [f"{path.name}[{i}]" for i in range(n)])


def samples_path(body: str) -> Path | None:
    """The samples file that ``body`` names (a ``.npz`` path, or a folder holding ``samples.npz``), else None
    (``body`` is another source: an image folder or a ``read_source`` form such as ``array:PATH``).

    A folder that ``ambient sample`` wrote without its ``samples.npz`` (``sampling.json`` only), a run folder
    (its ``samples/`` hold training previews) or a missing ``.npz`` path is an error rather than an image folder.
    """
    if body.startswith(_READER_FORMS):
        return None
    path = Path(body)
    if path.suffix == ".npz":
        return path
    if not path.is_dir():
        return None
    if (path / SAMPLES_FILE).is_file():
        return path / SAMPLES_FILE
    if (path / "sampling.json").is_file():
        raise AmbientError(f"{path}: has sampling.json but no {SAMPLES_FILE} (an interrupted `ambient sample`?)")
    if any((path / marker).exists() for marker in _RUN_MARKERS):
        raise AmbientError(f"{path}: is a training run folder; draw samples first (ambient sample --model {path} "
                           f"--out DIR) and pass DIR")
    return None


def read_synthetic(spec: str) -> ImageSet:
    """Synthetic images from ``spec``: an ``ambient sample`` output (folder or ``samples.npz``) or any source
    spec, with optional ``@class=`` (and ``@mode=`` for image folders) suffixes."""
    body, options = split_options(spec.strip())
    path = samples_path(body)
    if path is None:
        return read_source(spec)
    if "mode" in options:
        raise AmbientError(f"synthetic source {spec!r}: @mode applies to image folders, not to {SAMPLES_FILE}")
    images = read_samples_file(path)
    return filter_classes(images, options["class"], spec) if "class" in options else images
