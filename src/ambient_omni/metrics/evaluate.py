"""One entry point for every number the project reports: :func:`evaluate`.

For each feature extractor: Frechet distance (FD) of the samples against the reference,
KID, k-NN precision/recall and the Vendi score (diversity) of the samples and of a reference subset
of the same size. In pixel space: the patch-level FD and, when a training set
is given, the memorization share. Reference statistics come from the cache
(:mod:`ambient_omni.metrics.cache`). The protocol every project number uses is in
docs/PROTOCOL.md; the settings actually used are returned under ``"protocol"``.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_omni.data.imageset import from_uint8
from ambient_omni.errors import AmbientError
from ambient_omni.metrics.cache import reference_statistics
from ambient_omni.metrics.features import available_extractors, check_images, get_extractor
from ambient_omni.metrics.frechet import feature_statistics, frechet_distance
from ambient_omni.metrics.kid import kernel_inception_distance
from ambient_omni.metrics.memorization import DEFAULT_RATIO, memorization
from ambient_omni.metrics.patches import patch_frechet_distance
from ambient_omni.metrics.precision_recall import (
    BALL_K, DEFAULT_K, DEFAULT_QUANTILE, ball_precision_recall, check_k, class_coverage, precision_recall,
)
from ambient_omni.metrics.vendi import vendi_score

DEFAULT_REFERENCE = "fashion-mnist:test"
DEFAULT_FEATURES = ("fmnist-classifier", "effnet-lite0")


def load_images(source: Any, what: str) -> torch.Tensor:
    """Images ``(N, C, H, W)`` float in [-1, 1] from a tensor/array, an ImageSet, a ``samples.npz``
    (``images`` uint8), a folder holding ``samples.npz`` (for ``what == "samples"`` also a run folder:
    :func:`samples_file`) or a dataset folder's ``images.npy``, or any spec that
    ``ambient_omni.data.readers.read_source`` accepts."""
    if isinstance(source, (torch.Tensor, np.ndarray)):
        images = torch.as_tensor(source)
        images = from_uint8(images) if images.dtype == torch.uint8 else images.float()
    elif hasattr(source, "images"):
        images = torch.as_tensor(source.images).float()
    else:
        images = _load_path(str(source), what)
    check_images(images, what)
    return images


_RUN_MARKERS = ("log.jsonl", "run", "cells", "model")
_SAMPLE_DEPTH = 3


def _is_run_folder(path: Path) -> bool:
    """A training run (``log.jsonl``, ``model/``), a benchmark cell (``run/``) or a benchmark/demo (``cells/``)."""
    return path.is_dir() and any((path / marker).exists() for marker in _RUN_MARKERS)


def _samples_under(root: Path) -> list[Path]:
    """Every ``samples.npz`` up to :data:`_SAMPLE_DEPTH` folders below ``root`` (checkpoints skipped), sorted."""
    found = []
    for depth in range(1, _SAMPLE_DEPTH + 1):
        found += [p for p in root.glob("/".join(["*"] * depth) + "/samples.npz") if "checkpoints" not in p.parts]
    return sorted(found)


def samples_file(spec: Any) -> Path | None:
    """The ``samples.npz`` that ``spec`` names, or ``None`` when it is no such file or folder.

    Accepted: the file; a folder holding it (``ambient sample --out``); a run, cell or demo folder
    with exactly one ``samples.npz`` at most three levels down (e.g. ``RUN/samples/final``, a cell's
    ``samples/``). A run folder with none or several is an :class:`AmbientError` that says what to pass
    (its preview PNGs are training snapshots, never evaluated).
    """
    if not isinstance(spec, (str, os.PathLike)):
        return None
    path = Path(spec)
    if path.is_file() and path.suffix == ".npz":
        return path
    if path.is_dir() and (path / "samples.npz").is_file():
        return path / "samples.npz"
    if not _is_run_folder(path):
        return None
    found = _samples_under(path)
    if len(found) == 1:
        return found[0]
    if not found:
        raise AmbientError(f"{path} is a run folder without samples.npz (its samples/*.png are training previews); "
                           f"draw samples first: ambient sample --model {path} --out {path / 'samples' / 'final'}, "
                           f"then pass --samples {path / 'samples' / 'final'}")
    listed = ", ".join(str(p.parent) for p in found[:6]) + (", ..." if len(found) > 6 else "")
    raise AmbientError(f"{path} holds {len(found)} samples.npz files; pass one folder: {listed}")


def _read_numpy(path: Path, what: str) -> np.ndarray:
    """The array of a ``.npy`` file or the ``images`` array of a ``.npz``; a truncated or damaged file is an
    :class:`AmbientError` naming it."""
    try:
        with open(path, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                return loaded
            with loaded:
                if "images" not in loaded.files:
                    raise AmbientError(f"{path}: {what} file has no 'images' array")
                return loaded["images"]
    except AmbientError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise AmbientError(f"{path}: cannot read the {what} file, truncated or damaged? ({err})") from None


def _load_path(spec: str, what: str) -> torch.Tensor:
    path = samples_file(spec) if what == "samples" else None
    path = path or Path(spec)
    if path.is_dir() and (path / "samples.npz").is_file():
        path = path / "samples.npz"
    elif path.is_dir() and (path / "images.npy").is_file():
        return from_uint8(_read_numpy(path / "images.npy", what))
    if path.suffix == ".npz" and path.is_file():
        images = _read_numpy(path, what)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise AmbientError(f"{path}: 'images' must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
        return from_uint8(images)
    from ambient_omni.data.readers import read_source

    return torch.as_tensor(read_source(spec).images).float()


def fixed_subset(n_total: int, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of the first ``n`` entries of the permutation ``default_rng(seed)``
    of ``range(n_total)`` (all indices when ``n`` is None or >= n_total)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    if n < 2:
        raise AmbientError(f"--n-ref must be at least 2, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def _feature_metrics(samples: torch.Tensor, reference: torch.Tensor, name: str, opts: dict[str, Any],
                     cfg: dict[str, Any], labels: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    extractor = get_extractor(name, **opts)
    ref = reference_statistics(reference, extractor, cache_dir=opts.get("cache_dir"),
                               batch_size=cfg["batch_size"], progress=opts.get("progress", True))
    feats = extractor(samples, batch_size=cfg["batch_size"], progress=opts.get("progress", True))
    feats = feats.astype(np.float32).astype(np.float64)
    out: dict[str, Any] = {"fd": frechet_distance(*feature_statistics(feats), ref.mu, ref.sigma),
                           "settings": extractor.settings()}
    if name == "inception":  # the standard network: the only distance the project calls FID
        out["fid"] = out["fd"]
    kid_mean, kid_std = kernel_inception_distance(feats, ref.features, cfg["kid_subsets"],
                                                  cfg["kid_subset_size"], cfg["seed"])
    out.update(kid=kid_mean, kid_std=kid_std)
    pr_rows = np.random.default_rng(cfg["seed"]).permutation(ref.features.shape[0])[:feats.shape[0]]
    real = ref.features[pr_rows]
    out["precision"], out["recall"] = precision_recall(real, feats, cfg["k"], cfg["pr_quantile"])
    out["precision_balls"], out["recall_balls"] = ball_precision_recall(real, feats, BALL_K)
    out["vendi"], out["vendi_reference"] = vendi_score(feats), vendi_score(real)
    if labels is not None:
        coverage = class_coverage(ref.features, labels[1], feats, labels[0], cfg["k"])
        out["class_coverage"] = coverage
        out["class_coverage_min"] = min(coverage.values()) if coverage else None
    return out


def evaluate(samples: Any, reference: Any = DEFAULT_REFERENCE,
             features: list[str] | tuple[str, ...] = DEFAULT_FEATURES, n_ref: int | None = None,
             train_set: Any = None, *, k: int = DEFAULT_K, pr_quantile: float = DEFAULT_QUANTILE,
             kid_subsets: int = 100, kid_subset_size: int = 1000,
             memorization_ratio: float = DEFAULT_RATIO, patch_size: int = 8, patches_per_image: int = 8,
             seed: int = 0, batch_size: int = 64, cache_dir: str | os.PathLike | None = None,
             device: str | torch.device | None = None, extractor_options: dict[str, Any] | None = None,
             progress: bool = True, sample_labels: Any = None) -> dict[str, Any]:
    """Evaluate ``samples`` against ``reference`` on each feature set in ``features``.

    ``n_ref`` picks a fixed subset of the reference (:func:`fixed_subset`, seed 0).
    Precision/recall use as many reference features as there are samples (a fixed random
    subset, ``seed``), so both sets have equal size: ``precision``/``recall`` by the k-NN density test
    (``k``, ``pr_quantile``; about ``pr_quantile`` for samples drawn like the reference),
    ``precision_balls``/``recall_balls`` by the union of k-NN balls (k = 3, the metric before; it
    can be fooled, :mod:`ambient_omni.metrics.precision_recall`). ``vendi`` is the Vendi score (cosine
    kernel, :mod:`ambient_omni.metrics.vendi`) of the samples' features, ``vendi_reference`` that of the
    same equal-sized reference subset: the effective number of distinct samples next to the data's.
    ``train_set`` (images or a source spec) adds the pixel-space memorization share. ``sample_labels`` (the
    classes a conditional model was asked for, ``-1`` = none) with a labelled reference adds ``class_coverage``
    per feature set (:func:`~ambient_omni.metrics.precision_recall.class_coverage`). Returns a JSON-ready dict.
    """
    unknown = sorted(set(features) - set(available_extractors()))
    if unknown or not features:
        raise AmbientError(f"unknown feature set(s) {unknown or features}; choose from "
                           f"{', '.join(available_extractors())}")
    check_k(k)
    sample_images = load_images(samples, "samples")
    ref_all = load_images(reference, "reference")
    ref_images = ref_all[torch.as_tensor(fixed_subset(ref_all.shape[0], n_ref))]
    if sample_images.shape[1:] != ref_images.shape[1:]:
        raise AmbientError(f"samples have shape {tuple(sample_images.shape[1:])} but the reference "
                           f"has {tuple(ref_images.shape[1:])}")
    if not 0 < pr_quantile <= 1:
        raise AmbientError(f"pr_quantile must lie in (0, 1], got {pr_quantile}")
    cfg = {"k": k, "pr_quantile": pr_quantile, "k_balls": BALL_K, "kid_subsets": kid_subsets,
           "kid_subset_size": kid_subset_size, "seed": seed, "batch_size": batch_size}
    opts = {"device": device, "cache_dir": cache_dir, "progress": progress, **(extractor_options or {})}
    result: dict[str, Any] = {
        "n_samples": int(sample_images.shape[0]), "n_reference": int(ref_images.shape[0]),
        "reference": reference if isinstance(reference, str) else "<in-memory>",
        "protocol": {**cfg, "n_ref": n_ref, "memorization_ratio": memorization_ratio,
                     "patch_size": patch_size, "patches_per_image": patches_per_image,
                     "features": list(features)},
        "features": {name: _feature_metrics(sample_images, ref_images, name, opts, cfg,
                                            _labels(sample_labels, reference, ref_all.shape[0], n_ref))
                     for name in features},
        "pixels": {"patch_fd": patch_frechet_distance(sample_images, ref_images, patch_size,
                                                      patches_per_image, seed)},
    }
    if train_set is not None:
        train_images = load_images(train_set, "memorization train set")
        mem = memorization(sample_images, train_images, memorization_ratio)
        result["memorization"] = {"share": mem.share, "threshold": memorization_ratio, "space": "pixels",
                                  "n_train": int(train_images.shape[0]),
                                  "train": train_set if isinstance(train_set, str) else "<in-memory>",
                                  "median_ratio": float(np.median(mem.ratio))}
    return result


def _labels(sample_labels: Any, reference: Any, n_total: int, n_ref: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(sample labels, reference labels of the n_ref subset)`` for class coverage, or None when the samples
    carry no class (all -1) or the reference has no labels."""
    if sample_labels is None or not (np.asarray(sample_labels) >= 0).any():
        return None
    ref_labels = getattr(reference, "labels", None)
    if ref_labels is None and isinstance(reference, str):
        from ambient_omni.data.readers import read_source

        ref_labels = read_source(reference).labels
    if ref_labels is None:
        return None
    ref_labels = np.asarray(ref_labels)
    if len(ref_labels) != n_total or not (ref_labels >= 0).any():
        return None
    return np.asarray(sample_labels), ref_labels[fixed_subset(n_total, n_ref)]


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table: one row per metric, one column per feature set, plus pixel metrics."""
    names = list(result["features"])
    width = max([16] + [len(n) + 2 for n in names])
    lines = [f"samples: {result['n_samples']}   reference: {result['reference']} "
             f"({result['n_reference']} images)",
             "metric".ljust(12) + "".join(n.rjust(width) for n in names)]
    cells = {"FD": lambda m: f"{m['fd']:.2f}", **({"FID": lambda m: f"{m['fid']:.2f}" if "fid" in m else "-"}
                                                   if "inception" in names else {}),
             "KID (+- std)": lambda m: f"{m['kid']:.3g} +- {m['kid_std']:.2g}",
             "precision": lambda m: f"{m['precision']:.3f}", "recall": lambda m: f"{m['recall']:.3f}",
             "P / R balls": lambda m: (f"{m['precision_balls']:.3f} / {m['recall_balls']:.3f}"
                                       if "precision_balls" in m else "-"),
             "Vendi (ref)": lambda m: f"{m['vendi']:.2f} ({m['vendi_reference']:.2f})" if "vendi" in m else "-",
             **({"class coverage min": lambda m: (f"{m['class_coverage_min']:.3f}"
                                                  if m.get("class_coverage_min") is not None else "-")}
                if any("class_coverage" in result["features"][n] for n in names) else {})}
    for label, cell in cells.items():
        lines.append(label.ljust(12) + "".join(cell(result["features"][n]).rjust(width) for n in names))
    proto = result["protocol"]
    lines.append(f"patch FD (pixels, {proto['patch_size']}x{proto['patch_size']}): "
                 f"{result['pixels']['patch_fd']:.3f}")
    if "memorization" in result:
        mem = result["memorization"]
        lines.append(f"memorization (pixel d1/d2 < {mem['threshold']:.3f} vs {mem['n_train']} train images): "
                     f"{100 * mem['share']:.1f}%")
    lines.append(f"protocol: precision/recall k={proto['k']} q={proto.get('pr_quantile', '-')} "
                 f"kid {proto['kid_subsets']}x{proto['kid_subset_size']} seed={proto['seed']} n_ref={proto['n_ref']} "
                 "(see docs/PROTOCOL.md)")
    return "\n".join(lines)
