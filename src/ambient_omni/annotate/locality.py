"""Locality of a trained denoiser: the crop size -> sigma_max map (PAPER 2.4, Figures 15-18).

For each sigma on a grid and each context size ``C``:

- ``x_t = x + sigma * eps`` (one fixed ``eps`` per image, shared by all sigmas and sizes);
- the network sees only the ``C x C`` crop of ``x_t`` centred on the patch (a REAL crop: the U-Net
  takes any input size; its convolutions zero-pad at the crop border, so nothing outside the crop
  reaches the prediction), and predicts ``x0``;
- ``err(C, sigma) = mean over images and patch pixels of (D(crop_C(x_t), sigma)[patch] - x[patch])^2``
  for the ``P x P`` centre patch; ``C = full`` is the whole image.

Effective crop size at sigma: the smallest ``C`` with ``err(C, sigma) - err(full, sigma) <= tol``
(ABSOLUTE tolerance in squared [-1, 1] units, default 1e-3; a crop may also do better than full).
It should grow with sigma; we enforce it with a running maximum over increasing sigma. Then
``sigma_max(C) = the largest grid sigma whose (monotone) effective size is <= C`` (0 if none), which
is therefore non-decreasing in ``C``.

:func:`dataset_locality` is the whole measurement on a dataset folder's clean images (``ambient locality``
and the benchmark pipeline's ``ood-crops`` method): measure, report, write the JSON and its plot.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.seeding import generators

DEFAULT_SIGMAS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.35, 0.5, 0.7, 1.0, 1.5)
"""The sigma grid of ``ambient locality``."""


def window(h: int, w: int, size: int, center: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the ``size x size`` window centred on ``center``, shifted inside ``h x w``."""
    return min(max(center[0] - size // 2, 0), h - size), min(max(center[1] - size // 2, 0), w - size)


def _patch_in_crop(h: int, w: int, size: int, patch: int) -> tuple[slice, slice, tuple[int, int]]:
    """Slices of the centre patch inside the image and the centre used for the crops."""
    ch, cw = h // 2, w // 2
    top, left = ch - patch // 2, cw - patch // 2
    return slice(top, top + patch), slice(left, left + patch), (ch, cw)


def measure_locality(
    denoiser: nn.Module,
    images: torch.Tensor,
    sigmas: Sequence[float],
    crop_sizes: Sequence[int],
    patch: int = 2,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Errors ``err[s, c]`` (sigma x crop size) and ``full[s]`` on the centre ``patch x patch``."""
    n, _, h, w = images.shape
    if any(c < patch or c > min(h, w) for c in crop_sizes):
        raise AmbientError(f"crop sizes must lie in [{patch}, {min(h, w)}] (patch size .. image size), got {list(crop_sizes)}")
    rows, cols, center = _patch_in_crop(h, w, min(h, w), patch)
    eps = torch.stack([torch.randn(images.shape[1:], generator=g) for g in generators(seed, "locality", np.arange(n))])
    clean = images[..., rows, cols]
    err = np.zeros((len(sigmas), len(crop_sizes)))
    full = np.zeros(len(sigmas))
    with torch.no_grad():
        for i, sigma in enumerate(sigmas):
            xt = images + float(sigma) * eps
            full[i] = _patch_error(denoiser, xt, sigma, clean, rows, cols, batch_size)
            for k, size in enumerate(crop_sizes):
                top, left = window(h, w, size, center)
                crop = xt[..., top : top + size, left : left + size]
                r = slice(rows.start - top, rows.stop - top)
                c = slice(cols.start - left, cols.stop - left)
                err[i, k] = _patch_error(denoiser, crop, sigma, clean, r, c, batch_size)
    return {"sigmas": [float(s) for s in sigmas], "crop_sizes": [int(c) for c in crop_sizes],
            "patch": patch, "errors": err.tolist(), "full_errors": full.tolist(), "images": n}


def _patch_error(denoiser: nn.Module, x: torch.Tensor, sigma: float, clean: torch.Tensor,
                 rows: slice, cols: slice, batch_size: int) -> float:
    """Mean squared error of the denoised patch against the clean patch."""
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        pred = denoiser(xb, torch.full((len(xb),), float(sigma)))[..., rows, cols]
        total += float(((pred - clean[start : start + batch_size]) ** 2).sum())
    return total / clean.numel()


def effective_crop_sizes(errors: np.ndarray, full: np.ndarray, crop_sizes: Sequence[int], full_size: int,
                         tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Raw and monotone (running max over increasing sigma) effective crop size per sigma.

    Raw: the smallest ``C`` with ``errors[s, C] - full[s] <= tol``; ``full_size`` if none.
    """
    ok = np.asarray(errors) - np.asarray(full)[:, None] <= tol
    sizes = np.asarray(crop_sizes)
    raw = np.array([sizes[row].min() if row.any() else full_size for row in ok])
    return raw, np.maximum.accumulate(raw)


def crop_sigma_map(sigmas: Sequence[float], effective: np.ndarray, crop_sizes: Sequence[int]) -> dict[int, float]:
    """``sigma_max(C)`` = largest sigma (ascending grid) with ``effective <= C``; 0 if none.

    With a non-decreasing ``effective`` this is non-decreasing in ``C``.
    """
    sig = np.asarray(sigmas, dtype=np.float64)
    if np.any(np.diff(sig) <= 0):
        raise AmbientError("locality sigmas must be strictly increasing")
    out = {}
    for c in sorted(crop_sizes):
        fits = np.flatnonzero(np.asarray(effective) <= c)
        out[int(c)] = float(sig[fits.max()]) if fits.size else 0.0
    return out


def locality_report(result: dict[str, Any], full_size: int, tol: float = 1e-3) -> dict[str, Any]:
    """The JSON written by ``ambient locality``: raw curves, effective sizes and the map."""
    raw, mono = effective_crop_sizes(np.array(result["errors"]), np.array(result["full_errors"]),
                                     result["crop_sizes"], full_size, tol)
    mapping = crop_sigma_map(result["sigmas"], mono, result["crop_sizes"])
    return {
        "format": "ambient-omni-locality", "version": 1, **result, "tolerance": tol,
        "tolerance_kind": "absolute: err(C) - err(full) <= tol (squared [-1,1] units, mean over patch pixels)",
        "effective_crop_raw": raw.tolist(), "effective_crop_monotone": mono.tolist(),
        "monotone_rule": "running max of the effective crop size over increasing sigma",
        "crop_to_sigma_max": {str(k): v for k, v in mapping.items()},
    }


def read_crop_map(data: dict[str, Any], where: str) -> dict[int, float]:
    """The crop size -> sigma_max map from a locality JSON, validated (monotone, non-negative)."""
    try:
        mapping = {int(k): float(v) for k, v in data["crop_to_sigma_max"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise AmbientError(f"{where}: no valid 'crop_to_sigma_max' map (write it with `ambient locality`)") from None
    values = [mapping[k] for k in sorted(mapping)]
    if any(v < 0 for v in values) or any(b < a for a, b in zip(values, values[1:])):
        raise AmbientError(f"{where}: crop_to_sigma_max must be non-negative and non-decreasing in the crop size")
    return mapping


def default_crop_sizes(size: int, patch: int = 2) -> list[int]:
    """Crop sizes ``max(patch, 4), +2, ...`` below the image ``size``, then ``size`` itself."""
    return list(range(max(patch, 4), size, 2)) + [size]


def dataset_locality(model: str | os.PathLike, data: Any, out: str | os.PathLike, *, images: int = 256,
                     sigmas: Sequence[float] = DEFAULT_SIGMAS, crop_sizes: Sequence[int] | None = None,
                     patch: int = 2, tol: float = 1e-3, seed: int = 0, batch_size: int = 256,
                     device: str | None = None) -> dict[str, Any]:
    """Locality report of the denoiser at ``model`` (run or model folder) on the first ``images`` clean
    images of ``data`` (a :class:`~ambient_omni.data.dataset_folder.MixedDataset`), at ``crop_sizes`` (default
    :func:`default_crop_sizes`). Writes the plot ``OUT.png``, then the JSON ``out`` (so the JSON marks
    both done); returns the report.
    """
    from ambient_omni.annotate import plots
    from ambient_omni.device import pick_device
    from ambient_omni.files import write_json
    from ambient_omni.training.checkpoint import load_model, model_folder

    clean = torch.tensor([p == "clean" for p in data.provenance])
    if not clean.any():
        raise AmbientError(f"{data.path}: no clean images to measure locality on")
    dev = pick_device(device)
    x = data.images[clean][:images].to(dev)
    side = min(x.shape[-2:])
    sizes = list(crop_sizes) if crop_sizes is not None else default_crop_sizes(side, patch)
    folder = model_folder(model)
    result = measure_locality(load_model(folder).to(dev), x, sigmas, sizes, patch, seed, batch_size)
    report = {**locality_report(result, side, tol), "model": str(folder)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    plots.plot_locality(str(Path(out).with_suffix(".png")), report)
    write_json(out, report)
    return report
