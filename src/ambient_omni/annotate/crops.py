"""sigma_max of out-of-distribution images with crop classifiers (PAPER 2.4, Figure 5).

For crop size ``C`` (classifier ``f_C`` trained on real ``C x C`` crops, target = positive):
the image is tiled into the non-overlapping ``C x C`` crops ``(floor(H/C) x floor(W/C)`` of them,
anchored at the top-left corner), each noised at a small ``sigma`` with noise seeded by
``(seed, image id, C)``, and ``q_C = mean over crops of sigmoid(f_C(crop + sigma eps, sigma))``.
``C*`` = the largest ``C`` with ``q_C > threshold`` (default 0.25: the crops still fool the
classifier), and ``sigma_max = map(C*)`` from the locality measurement (0 if no size fools it).
OOD images get ``sigma_min = inf`` (never used at high noise).

:func:`annotate_dataset` is the whole annotation of a dataset folder (``ambient annotate crops`` and the
benchmark pipeline's ``ood-crops`` method): load the classifiers and the map, annotate, write the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ambient_omni.data.annotations import AnnotationTable
from ambient_omni.data.mixed import LOW_QUALITY_KINDS
from ambient_omni.errors import AmbientError
from ambient_omni.seeding import generators


def tile(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, C, H, W) -> (N, rows, cols, C, size, size)`` non-overlapping tiles (remainder dropped)."""
    n, c, h, w = images.shape
    rows, cols = h // size, w // size
    if rows == 0 or cols == 0:
        raise AmbientError(f"crop size {size} is larger than the {h}x{w} images")
    x = images[..., : rows * size, : cols * size].reshape(n, c, rows, size, cols, size)
    return x.permute(0, 2, 4, 1, 3, 5)


def crop_probabilities(classifier: nn.Module, images: torch.Tensor, ids: np.ndarray, size: int,
                       sigma: float, seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """Per-crop ``P(target)``: array ``(N, rows, cols)``."""
    tiles = tile(images, size)
    n, rows, cols = tiles.shape[:3]
    gens = generators(seed, "crop-noise", np.asarray(ids), size)
    eps = torch.stack([torch.randn(tiles.shape[1:], generator=g) for g in gens])
    x = (tiles + sigma * eps).reshape(n * rows * cols, *tiles.shape[3:])
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            out.append(torch.sigmoid(classifier(xb, torch.full((len(xb),), float(sigma))).float()))
    return torch.cat(out).reshape(n, rows, cols).numpy()


def choose_sigma_max(mean_probs: Mapping[int, np.ndarray], crop_map: Mapping[int, float],
                     threshold: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Largest fooling crop size per image (0 if none) and its ``sigma_max = crop_map[C]``."""
    sizes = sorted(mean_probs)
    missing = [c for c in sizes if c not in crop_map]
    if missing:
        raise AmbientError(f"the locality map has no sigma_max for crop size(s) {missing}; "
                           f"it covers {sorted(crop_map)}")
    n = len(next(iter(mean_probs.values())))
    best = np.zeros(n, dtype=np.int64)
    for c in sizes:
        best = np.where(np.asarray(mean_probs[c]) > threshold, c, best)
    sigma_max = np.array([crop_map[int(c)] if c else 0.0 for c in best])
    return best, sigma_max


def annotate_crops(classifiers: Mapping[int, nn.Module], images: torch.Tensor, ids: np.ndarray,
                   crop_map: Mapping[int, float], sigma: float = 0.05, threshold: float = 0.25,
                   seed: int = 0, batch_size: int = 1024) -> dict[str, np.ndarray | dict]:
    """Crop-classifier annotation of OOD ``images``: mean probabilities per size, chosen size, sigma_max."""
    means, per_crop = {}, {}
    for size, clf in sorted(classifiers.items()):
        probs = crop_probabilities(clf, images, ids, size, sigma, seed, batch_size)
        per_crop[size] = probs
        means[size] = probs.reshape(len(probs), -1).mean(1)
    best, sigma_max = choose_sigma_max(means, crop_map, threshold)
    return {"mean_probs": means, "per_crop": per_crop, "crop_size": best, "sigma_max": sigma_max}


def classifier_crop_size(config: Mapping, where: str) -> int:
    """The crop size a crop classifier was trained on (from its model config); a model that is no
    classifier or a noise classifier is an error (:func:`~ambient_omni.annotate.classifier_task.classifier_kind`)."""
    from ambient_omni.annotate.classifier_task import classifier_kind

    kind = classifier_kind(dict(config) if isinstance(config, Mapping) else config, where)
    size = (config.get("classifier") or {}).get("crop_size")
    if kind != "crop" or not isinstance(size, int) or size < 1:
        raise AmbientError(f"{where}: not a crop classifier (its config has no classifier.crop_size); "
                           "train one with `ambient classifier train --kind crop --crop-size C`")
    return size


def sizes_in(values: Sequence[int]) -> list[int]:
    """Sorted unique crop sizes, an error on duplicates."""
    if len(set(values)) != len(values):
        raise AmbientError(f"two crop classifiers share a crop size: {sorted(values)}")
    return sorted(values)


def load_classifiers(paths: Sequence[str | os.PathLike], device: torch.device) -> dict[int, nn.Module]:
    """Crop classifiers (run or model folders) keyed by the crop size each was trained on."""
    from ambient_omni.training.checkpoint import load_model, model_folder, read_model_config

    classifiers = {}
    for path in paths:
        folder = model_folder(path)
        size = classifier_crop_size(read_model_config(folder), str(folder))
        if size in classifiers:
            raise AmbientError(f"two crop classifiers share crop size {size}")
        classifiers[size] = load_model(folder).to(device)
    return classifiers


def ood_ids(data: Any) -> np.ndarray:
    """Ids of the ``ood:*`` images of ``data``; an error if there are none or if some are corrupted or synthetic."""
    kinds = [p.split(":", 1)[0] for p in data.provenance]
    low = sorted(set(kinds) & set(LOW_QUALITY_KINDS))
    if low:
        raise AmbientError(f"{data.path}: has {' and '.join(low)} images; annotate them with `ambient annotate noise` "
                           "and merge the two files with `ambient annotations merge`")
    ood = np.array([i for i, k in enumerate(kinds) if k == "ood"], dtype=np.int64)
    if not len(ood):
        raise AmbientError(f"{data.path}: no ood:* images to annotate")
    return ood


def crops_table(data: Any, ood: np.ndarray, result: Mapping[str, Any], classifiers: str, threshold: float,
                created_by: dict[str, Any]) -> AnnotationTable:
    """Annotation table: ``ood`` images ``(inf, sigma_max)`` with their chosen crop size and mean
    ``P(target)`` per size as extras; every other (clean) image ``(0, 0)``."""
    n = len(data)
    is_ood = np.zeros(n, dtype=bool)
    is_ood[ood] = True
    sigma_min, sigma_max = np.zeros(n), np.zeros(n)
    sigma_min[ood], sigma_max[ood] = math.inf, result["sigma_max"]
    extra = [{"provenance": p} for p in data.provenance]
    for k, i in enumerate(ood.tolist()):
        extra[i]["crop_size"] = int(result["crop_size"][k])
        extra[i]["mean_p_target"] = {str(c): float(m[k]) for c, m in result["mean_probs"].items()}
    return AnnotationTable(np.arange(n), sigma_min, sigma_max, ["crops" if o else "clean" for o in is_ood],
                           [classifiers if o else None for o in is_ood], [threshold if o else None for o in is_ood],
                           extra, n, data.sha256, created_by)


def annotate_dataset(classifiers: Sequence[str | os.PathLike], locality: str | os.PathLike, data: Any,
                     out: str | os.PathLike, *, sigma: float = 0.05, threshold: float = 0.25, seed: int = 0,
                     batch_size: int = 1024, device: str | None = None) -> AnnotationTable:
    """sigma_max of the ``ood:*`` images of ``data`` (a :class:`~ambient_omni.data.dataset_folder.MixedDataset`)
    from the crop ``classifiers`` (run or model folders) and the ``ambient locality`` JSON ``locality``.

    Writes the picture ``OUT-crops.png`` (per-crop ``P(target)`` of the first OOD image), then the
    annotation file ``out`` (so the file marks both done); returns the table.
    """
    from ambient_omni.annotate import plots
    from ambient_omni.annotate.locality import read_crop_map
    from ambient_omni.data.annotations import write_annotations
    from ambient_omni.device import pick_device
    from ambient_omni.files import read_json

    dev = pick_device(device)
    ood = ood_ids(data)
    crop_map = read_crop_map(read_json(locality), str(locality))
    models = load_classifiers(classifiers, dev)
    images = data.images[torch.as_tensor(ood)].to(dev)
    result = annotate_crops(models, images, ood, crop_map, sigma, threshold, seed, batch_size)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    plots.plot_crop_probabilities(f"{Path(out).with_suffix('')}-crops.png", data.images[int(ood[0])].numpy(),
                                  {c: p[0] for c, p in result["per_crop"].items()}, threshold)
    table = crops_table(data, ood, result, ",".join(map(str, classifiers)), threshold,
                        {"rule": "crops", "locality": str(locality), "sigma": sigma, "threshold": threshold})
    write_annotations(out, table)
    return table
