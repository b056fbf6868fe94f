"""A benchmark cell's noise-classifier stages: the dataset's noise classifier (trained once per settings and
seed, optionally without a held-out share for the crossing rule) and the annotation files made with it,
``classifier`` (per-image sigma_min, the paper's rule, optionally floored) and ``crossing`` (one sigma_min from
the theory's bounds). Each is cached under the benchmark folder by the hash of what defines it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ambient_omni.errors import AmbientError
from ambient_omni.experiments.stage_keys import config_hash

DEFAULT_CLASSIFIER = {"preset": "fmnist-classifier", "images": 100_000, "batch": 64, "lr": 1e-3,
                      "annotate_method": "fast", "tau": 0.45}
ANNOTATION_KEYS = ("span", "grid_size", "draws", "stride", "window", "back", "max_points", "margin", "seed",
                   "at_floor", "threshold_rule")


def _train_noise_classifier(dataset_dir: Path, cfg: dict[str, Any], out: Path) -> Path:
    """Noise-conditional clean-vs-corrupted classifier on the dataset (balanced batches); ``cfg["network"]``
    (optional) overrides the preset's network settings; with ``cfg["holdout"] = F`` it trains without a held-out
    share F of the clean and of the corrupted images, with ``cfg["folds"] = K, cfg["fold"] = k`` without fold k
    of a K-way partition (:func:`~ambient_omni.annotate.crossing_rule.training_split`, seeded by the classifier
    seed), and records which for the crossing rule."""
    from ambient_omni.annotate.classifier_task import train_classifier
    from ambient_omni.annotate.crossing_rule import training_split
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.networks.registry import preset_config

    data = load_dataset(dataset_dir)
    clean = torch.tensor([p == "clean" for p in data.provenance])
    used, info = torch.ones(len(clean), dtype=torch.bool), {"data": str(dataset_dir)}
    if cfg.get("holdout") is not None or cfg.get("folds") is not None:
        mask, info["holdout"] = training_split(data.provenance, data.sha256, int(cfg.get("seed", 0)), cfg.get("holdout"),
                                               cfg.get("folds"), cfg.get("fold"))
        used = torch.from_numpy(mask)
    network = preset_config(cfg["preset"], in_channels=int(data.images.shape[1]), **cfg.get("network", {}))
    return train_classifier(network, data.images[clean & used], data.images[~clean & used], out, total_images=cfg["images"],
                            batch_size=cfg["batch"], lr=cfg["lr"], checkpoint_every=cfg.get("checkpoint_every", 500),
                            seed=cfg.get("seed", 0), info=info)


def classifier_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The resolved ``[classifier]`` settings of cell ``cfg``: ``DEFAULT_CLASSIFIER``, then ``seed`` = the
    cell's training seed, then the cell's own ``[classifier]`` table (an explicit ``classifier.seed`` wins)."""
    return {**DEFAULT_CLASSIFIER, "seed": int(cfg.get("seed", 0)), **cfg.get("classifier", {})}


def noise_classifier(ccfg: dict[str, Any], dataset_dir: Path, root: Path) -> tuple[Path, str]:
    """The dataset's noise classifier for the resolved ``[classifier]`` settings ``ccfg``, trained once into
    ``root/classifiers/<dataset>-<hash of the training settings>``; returns its model folder and the hash.
    ``ccfg["holdout"]`` (the crossing rule's held-out share) or ``ccfg["folds"]``, ``ccfg["fold"]`` (its
    cross-fitting fold) are part of the hash."""
    train_keys = ("preset", "network", "images", "batch", "lr", "seed", "holdout", "folds", "fold")
    run_key = config_hash({"data": dataset_dir.name, **{k: ccfg[k] for k in train_keys if ccfg.get(k) is not None}})
    run = root / "classifiers" / f"{dataset_dir.name}-{run_key}"
    if not (run / "model" / "model.safetensors").is_file():
        _train_noise_classifier(dataset_dir, ccfg, run)
    return run / "model", run_key


def crossing_annotations(cfg: dict[str, Any], dataset_dir: Path, root: Path) -> Path:
    """The crossing rule (:mod:`ambient_omni.annotate.crossing_rule`), once per classifier set: the cell's noise
    classifier trained on all but a held-out share (``classifier.holdout``, default 0.2) of the clean and of the
    corrupted images, or with ``crossing.folds = K`` one classifier per fold of a K-way partition (cross-fitting:
    every image held out once), the balanced accuracy on the held-out images, and the theory's crossing for this
    set's clean and corrupted counts as every corrupted image's sigma_min; ``crossing.confidence`` makes it
    conservative (:func:`~ambient_omni.annotate.crossing_rule.wilson_upper`), ``crossing.informative = true``
    raises a vacuous crossing (:func:`~ambient_omni.annotate.crossing_rule.crossing_rule`)."""
    from ambient_omni.annotate.crossing_rule import HOLDOUT_FRACTION, annotate_crossing
    from ambient_omni.data.annotations import write_annotations
    from ambient_omni.data.dataset_folder import load_dataset

    ccfg, xcfg = classifier_settings(cfg), cfg.get("crossing", {})
    if unknown := set(xcfg) - {"folds", "confidence", "informative"}:
        raise AmbientError(f"crossing.{sorted(unknown)[0]}: not a crossing setting (folds, confidence, informative)")
    folds = xcfg.get("folds")
    if folds is not None and (int(folds) < 2 or "holdout" in cfg.get("classifier", {})):
        raise AmbientError(f"crossing.folds = {folds}: cross-fitting needs at least 2 folds and replaces "
                           "classifier.holdout (give one of them)")
    if folds is None:  # one classifier without a held-out share (files named as before cross-fitting existed)
        ccfg["holdout"] = float(ccfg.get("holdout", HOLDOUT_FRACTION))
        model_dir, run_key = noise_classifier(ccfg, dataset_dir, root)
        model_dirs, suffix = [model_dir], ""
    else:
        ccfg.pop("holdout", None)
        trained = [noise_classifier({**ccfg, "folds": int(folds), "fold": k}, dataset_dir, root) for k in range(int(folds))]
        model_dirs, run_key, suffix = [d for d, _ in trained], config_hash([key for _, key in trained]), f"-k{int(folds)}"
    confidence, informative = xcfg.get("confidence"), bool(xcfg.get("informative", False))
    suffix += ("" if confidence is None else f"-q{float(confidence):g}") + ("-informative" if informative else "")
    out = root / "annotations" / f"{dataset_dir.name}-crossing-{run_key}{suffix}.jsonl"
    if not out.exists():
        table, _ = annotate_crossing(model_dirs, load_dataset(dataset_dir), seed=int(ccfg["seed"]),
                                     confidence=None if confidence is None else float(confidence),
                                     informative=informative)
        write_annotations(out, table)
    return out


def _annotation_config(ccfg: dict[str, Any], model_dir: Path) -> Any:
    """The :class:`~ambient_omni.annotate.noise.NoiseAnnotationConfig` of resolved classifier settings, on
    the grid of the classifier's training log-normal (as ``ambient annotate noise`` does)."""
    from ambient_omni.annotate.noise import NoiseAnnotationConfig, training_lognormal

    search = {k: ccfg[k] for k in ANNOTATION_KEYS if k in ccfg}
    p_mean, p_std = training_lognormal(model_dir)
    return NoiseAnnotationConfig(method=ccfg["annotate_method"], tau=ccfg["tau"], p_mean=p_mean, p_std=p_std, **search)


def classifier_annotations(cfg: dict[str, Any], dataset_dir: Path, root: Path) -> Path:
    """Train the noise classifier of the dataset (once) and annotate sigma_min with it (once). With
    ``classifier.sigma_min_floor = S`` the cell trains on a copy floored at S
    (:func:`~ambient_omni.data.annotation_ops.floor_sigma_min`), made from the same unfloored file."""
    from ambient_omni.annotate.noise import annotate_dataset, write_pictures
    from ambient_omni.data.dataset_folder import load_dataset

    ccfg = classifier_settings(cfg)
    floor = ccfg.pop("sigma_min_floor", None)
    model_dir, run_key = noise_classifier(ccfg, dataset_dir, root)
    out = root / "annotations" / f"{dataset_dir.name}-classifier-{config_hash({'run': run_key, **ccfg})}.jsonl"
    if not out.exists():
        acfg = _annotation_config(ccfg, model_dir)
        data = load_dataset(dataset_dir)
        table = annotate_dataset(model_dir, data, out, acfg)
        write_pictures(out, model_dir, data, table, acfg)
    return out if floor is None else _floored(out, float(floor))


def _floored(annotations: Path, floor: float) -> Path:
    """``annotations`` with every positive sigma_min raised to ``floor``, written once beside it."""
    from ambient_omni.data.annotation_ops import floor_sigma_min
    from ambient_omni.data.annotations import read_annotations, write_annotations

    out = annotations.with_name(f"{annotations.stem}-floor{floor:g}.jsonl")
    if not out.exists():
        write_annotations(out, floor_sigma_min(read_annotations(annotations), floor))
    return out
