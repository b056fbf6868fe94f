"""The end-to-end pipeline of one benchmark cell, as library calls:

dataset folder -> annotation file (by method) -> denoiser training -> samples -> metrics.

Every stage writes its output to a folder and is skipped when that output already exists
with the same configuration hash, so a sweep killed midway resumes where it stopped (training
itself resumes from its latest checkpoint). Stages shared by several cells are computed once: the
dataset of a setting (per data seed), and for ``ood-crops`` the target-only denoiser, its locality map and
the crop classifiers (per ``crops.seed``). The training seed varies the denoiser run and its sampling, and
for the ``classifier`` method also the noise classifier and its annotation (initialisation, batches,
annotation noise): classifiers trained with different seeds annotate differently, and a seed spread that
left that out would flatter the classifier method. Results tables say so under the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_omni.annotate.locality import DEFAULT_SIGMAS
from ambient_omni.errors import AmbientError
from ambient_omni.experiments.classifier_stage import classifier_annotations, classifier_settings, crossing_annotations
from ambient_omni.experiments.evaluation_stage import DEFAULT_EVAL, sample_and_evaluate
from ambient_omni.experiments.latent_stage import latent_dataset, quality_annotations
from ambient_omni.experiments.synthetic_stage import synthetic_dataset
from ambient_omni.experiments.stage_keys import config_hash, mark_stage, stage_done
from ambient_omni.files import exclusive_lock, read_json
from ambient_omni.training.checkpoint import ADOPTED_RECORD

DEFAULT_TRAIN = {"preset": "fmnist-small", "images": 150_000, "batch": 64, "lr": 1e-3, "lr_rampup": 10_000,
                 "ema_halflife": 10_000, "checkpoint_every": 500}
DEFAULT_CROPS = {"seed": 0, "crop_sizes": None, "sigmas": list(DEFAULT_SIGMAS), "locality_images": 256, "patch": 2,
                 "tol": 1e-3, "preset": "fmnist-classifier", "network": {}, "images": 50_000, "batch": 64, "lr": 2e-3,
                 "lr_rampup": 2000, "ema_halflife": 2000, "checkpoint_every": 500, "sigma": 0.05, "threshold": 0.25}
"""``[base.crops]`` of an ``ood-crops`` cell: locality (``sigmas``, ``patch``, ``tol``, ``locality_images``),
crop classifiers (``crop_sizes``: default 4, 8, 12, 16 below the image size; ``preset`` + ``network``
overrides and training as ``ambient classifier train --kind crop``), annotation (``sigma``, ``threshold``);
``seed`` seeds the shared stages (target-only denoiser, classifiers, crop noise)."""


# ----------------------------------------------------------------------------- dataset

def dataset_spec(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a cell configuration that defines its dataset."""
    keys = ("source", "n", "clean_count", "clean_fraction", "corruption", "data_seed", "target", "target_count",
            "ood", "ood_count")
    return {k: cfg.get(k) for k in keys}


def make_dataset(cfg: dict[str, Any], root: Path) -> Path:
    """Build (or reuse) the dataset folder of a cell: ``root/datasets/<hash>``.

    Mixed-quality (``corruption`` given): ``clean_count`` clean images of ``source`` (a subset of
    ``n``), the rest corrupted (a list of corruptions: the corrupted images take them in turn). OOD (``target`` and ``ood`` given): ``target_count`` clean images
    of the target source plus ``ood_count`` (default all) images of the OOD source.
    """
    from ambient_omni.data.corruptions import parse_corruption
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import Part, build_mixed, combine_datasets
    from ambient_omni.data.readers import read_source

    if cfg.get("synthetic"):
        return synthetic_dataset(cfg, root)
    spec = dataset_spec(cfg)
    key = config_hash(spec)
    folder = root / "datasets" / key
    if stage_done(folder, key):
        return folder
    seed = int(spec["data_seed"] or 0)
    if spec["target"] and spec["ood"]:
        parts = [Part(read_source(spec["target"]), "clean", spec["target"], count=spec["target_count"]),
                 Part(read_source(spec["ood"]), f"ood:{spec['ood']}", spec["ood"], count=spec["ood_count"])]
        data = combine_datasets(parts, seed)
    elif spec["corruption"]:
        source = spec["source"] or "fashion-mnist:train"
        specs = spec["corruption"] if isinstance(spec["corruption"], list) else [spec["corruption"]]
        data = build_mixed(read_source(source), [parse_corruption(s) for s in specs], spec["clean_fraction"], seed,
                           source, n=spec["n"], clean_count=spec["clean_count"])
    else:
        raise AmbientError(f"cell dataset: give either 'corruption' or 'target' + 'ood' (got {spec})")
    write_dataset(folder, data, command=json.dumps(spec, sort_keys=True), overwrite=True)
    mark_stage(folder, key, spec=spec)
    return folder


# ----------------------------------------------------------------------------- annotations

def make_annotations(cfg: dict[str, Any], dataset_dir: Path, root: Path, pixel_dir: Path | None = None) -> Path | None:
    """The annotation file of a cell's method (``None`` = every image clean: ``all-data``); ``pixel_dir`` is the
    pixel dataset of a latent cell's ``dataset_dir`` (the ``quality`` method scores its images)."""
    from ambient_omni.data.annotations import AnnotationTable, write_annotations
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.data.mixed import LOW_QUALITY_KINDS

    method = cfg["method"]
    if method == "all-data":
        return None
    data = load_dataset(dataset_dir)
    ids, prov = data.ids.numpy(), data.provenance
    if method == "clean-only":
        excluded = {kind: (np.inf, 0.0) for kind in (*LOW_QUALITY_KINDS, "ood")}
        table = AnnotationTable.by_provenance(ids, prov, {"clean": (0.0, 0.0), **excluded}, "clean-only")
    elif method == "fixed":
        table = AnnotationTable.fixed(ids, prov, sigma_min=float(cfg["sigma_min"]))
    elif method == "ood-fixed":
        table = AnnotationTable.by_provenance(ids, prov, {"clean": (0.0, 0.0), "ood": (np.inf, float(cfg["sigma_max"]))}, "ood-fixed")
    elif method == "classifier":
        return classifier_annotations(cfg, dataset_dir, root)
    elif method == "crossing":
        return crossing_annotations(cfg, dataset_dir, root)
    elif method == "quality":
        return quality_annotations(cfg, dataset_dir, pixel_dir or dataset_dir, root)
    elif method == "ood-crops":
        return crops_annotations(cfg, dataset_dir, root)
    else:
        raise AmbientError(f"method {method!r} is not available in the pipeline yet")
    table.dataset_sha256 = data.sha256
    path = root / "annotations" / f"{dataset_dir.name}-{method}-{config_hash([method, cfg.get('sigma_min'), cfg.get('sigma_max')])}.jsonl"
    if not path.exists():
        write_annotations(path, table)
    return path


def annotation_metrics(cfg: dict[str, Any], annotations: Path | None) -> dict[str, float] | None:
    """What a cell's annotation did, for its results row, read from the annotation file alone.
    ``crossing``: the rule's sigma_min (``inf`` if it found no crossing), its status and the classifier's
    held-out balanced accuracy at the measured sigma nearest 1. ``classifier``: mean and median sigma_min of the
    corrupted images, the shares at the ends of the grid the
    file records (:func:`~ambient_omni.annotate.noise.edge_shares`: never crossed tau, or above tau from the
    smallest sigma on), and the classifier's
    separation-check accuracy (its run's ``check.json``, when there is one); ``ood-crops``: mean sigma_max
    over the OOD images (0 included) and the share of them no crop size admitted (sigma_max = 0); ``quality``: the
    share of the images it trusts as clean that are clean by provenance. Other methods: ``None``."""
    from ambient_omni.annotate.curves import lognormal_grid
    from ambient_omni.annotate.noise import edge_shares
    from ambient_omni.data.annotations import read_annotations

    if annotations is None or cfg["method"] not in ("classifier", "crossing", "ood-crops", "quality"):
        return None
    table = read_annotations(annotations)
    if cfg["method"] == "quality":  # how many of the images it trusts as clean are clean (by provenance)
        trusted = table.sigma_min == 0
        truly = np.array([str(e.get("provenance")) == "clean" for e in table.extra])
        return {"trusted_clean_precision": float(truly[trusted].mean()) if trusted.any() else 0.0}
    if cfg["method"] == "crossing":
        made = table.created_by
        accuracy = dict(zip(made["sigmas"], made["accuracies"]))
        nearest = min(accuracy, key=lambda s: abs(math.log(s)))  # the held-out accuracy nearest sigma = 1
        found = float(made["sigma_min"])  # "inf" when mixed data never has the better bound
        return {"crossing_status": made["status"], "held_out_accuracy_at_1": float(accuracy[nearest]),
                **({"mean_sigma_min": found} if math.isfinite(found) else {})}
    if cfg["method"] == "ood-crops":
        hi = table.sigma_max[np.isinf(table.sigma_min)]
        return {"mean_sigma_max": float(hi.mean()), "unused_share": float(np.mean(hi == 0))} if hi.size else None
    made = table.created_by
    lo = table.sigma_min[(table.sigma_min > 0) & np.isfinite(table.sigma_min)]
    if lo.size == 0:
        return None
    edges = edge_shares(lo, lognormal_grid(made["grid_size"], made["p_mean"], made["p_std"], made["grid_seed"]))
    metrics = {"mean_sigma_min": float(lo.mean()), "median_sigma_min": float(np.median(lo)),
               "never_crossed_share": edges["never_crossed"], "at_grid_min_share": edges["at_grid_min"]}
    check = Path(made["classifier"]).parent / "check.json"
    if check.is_file():
        metrics["classifier_accuracy"] = float(read_json(check)["accuracy"])
    return metrics


def _target_denoiser(cfg: dict[str, Any], dataset_dir: Path, root: Path, seed: int) -> tuple[Path, str]:
    """The cell's denoiser trained on the target (clean) images only, once per dataset, train settings and
    seed: ``root/denoisers/<dataset>-target-only-<hash>``; returns its model folder and the hash."""
    annotations = make_annotations({"method": "clean-only"}, dataset_dir, root)
    train = {**DEFAULT_TRAIN, **cfg.get("train", {})}
    key = config_hash({"data": dataset_dir.name, "train": train, "seed": seed, "annotations": annotations.name})
    run = root / "denoisers" / f"{dataset_dir.name}-target-only-{key}"
    return train_denoiser({"train": train, "seed": seed}, dataset_dir, annotations, run, denoiser_runs(root, run)), key


def _crop_classifier(data: Any, dataset_dir: Path, ccfg: dict[str, Any], size: int, root: Path) -> tuple[Path, str]:
    """Crop classifier of size ``size`` (clean crops positive, ood:* crops negative), once per dataset and
    settings: ``root/classifiers/<dataset>-crop<size>-<hash>``; returns its model folder and the hash."""
    from ambient_omni.annotate.classifier_task import train_classifier
    from ambient_omni.networks.registry import preset_config

    train_keys = ("seed", "preset", "network", "images", "batch", "lr", "lr_rampup", "ema_halflife")
    key = config_hash({"data": dataset_dir.name, "crop_size": size, **{k: ccfg[k] for k in train_keys}})
    run = root / "classifiers" / f"{dataset_dir.name}-crop{size}-{key}"
    if (run / "model" / "model.safetensors").is_file():
        return run / "model", key
    kinds = [p.split(":", 1)[0] for p in data.provenance]
    network = preset_config(ccfg["preset"], in_channels=int(data.images.shape[1]), **ccfg["network"])
    folder = train_classifier(
        network, data.images[torch.tensor([k == "clean" for k in kinds])],
        data.images[torch.tensor([k == "ood" for k in kinds])], run, crop_size=size, total_images=ccfg["images"],
        batch_size=ccfg["batch"], lr=ccfg["lr"], lr_rampup_images=ccfg["lr_rampup"],
        ema_halflife_images=ccfg["ema_halflife"], checkpoint_every=ccfg["checkpoint_every"], seed=ccfg["seed"],
        info={"data": str(dataset_dir)})
    return folder, key


def _locality_map(cfg: dict[str, Any], data: Any, dataset_dir: Path, ccfg: dict[str, Any], sizes: list[int],
                  root: Path) -> tuple[Path, str]:
    """Locality JSON of the target-only denoiser at the default crop sizes and ``sizes``, once per denoiser
    and settings: ``root/locality/<dataset>-<hash>.json``; returns its path and the hash."""
    from ambient_omni.annotate import locality

    denoiser, den_key = _target_denoiser(cfg, dataset_dir, root, int(ccfg["seed"]))
    side = int(min(data.images.shape[-2:]))
    loc_sizes = sorted(set(locality.default_crop_sizes(side, ccfg["patch"])) | set(sizes))
    loc_keys = ("sigmas", "locality_images", "patch", "tol", "seed")
    key = config_hash({"denoiser": den_key, "crop_sizes": loc_sizes, **{k: ccfg[k] for k in loc_keys}})
    out = root / "locality" / f"{dataset_dir.name}-{key}.json"
    if not out.exists():
        locality.dataset_locality(denoiser, data, out, images=ccfg["locality_images"], sigmas=ccfg["sigmas"],
                                  crop_sizes=loc_sizes, patch=ccfg["patch"], tol=ccfg["tol"], seed=ccfg["seed"])
    return out, key


def crops_annotations(cfg: dict[str, Any], dataset_dir: Path, root: Path) -> Path:
    """sigma_max of the cell's ood:* images (PAPER 2.4), every stage computed once and cached under ``root``:
    a denoiser on the target images only, its locality map (``root/locality/``), one crop classifier per
    crop size, then the crop annotation (``root/annotations/``, with its ``-crops.png`` picture)."""
    from ambient_omni.annotate import crops
    from ambient_omni.data.dataset_folder import load_dataset

    ccfg = {**DEFAULT_CROPS, **cfg.get("crops", {})}
    data = load_dataset(dataset_dir)
    crops.ood_ids(data)  # fail before any training if there is nothing to annotate
    side = int(min(data.images.shape[-2:]))
    sizes = sorted(ccfg["crop_sizes"] or [c for c in (4, 8, 12, 16) if c < side])
    if not sizes:
        raise AmbientError(f"{dataset_dir}: no default crop size fits {side}-pixel images; set crops.crop_sizes")
    loc, loc_key = _locality_map(cfg, data, dataset_dir, ccfg, sizes, root)
    classifiers = [_crop_classifier(data, dataset_dir, ccfg, size, root) for size in sizes]
    key = config_hash({"locality": loc_key, "classifiers": [k for _, k in classifiers],
                       **{k: ccfg[k] for k in ("sigma", "threshold", "seed")}})
    out = root / "annotations" / f"{dataset_dir.name}-ood-crops-{key}.jsonl"
    if not out.exists():
        crops.annotate_dataset([folder for folder, _ in classifiers], loc, data, out, sigma=ccfg["sigma"],
                               threshold=ccfg["threshold"], seed=ccfg["seed"])
    return out


# ----------------------------------------------------------------------------- train, sample, evaluate

def train_denoiser(cfg: dict[str, Any], dataset_dir: Path, annotations: Path | None, run: Path,
                   siblings: Iterable[Path] = ()) -> Path:
    """Train the cell's denoiser (resuming from the run's latest checkpoint) and return ``run/model``.

    A new run first adopts the latest checkpoint of a run in ``siblings`` that lies on its trajectory
    (same everything but a shorter budget: :meth:`Trainer.adopt_shorter_run`), so the cells of a budget
    sweep share their common steps; the result is the same as training from scratch.
    ``train`` settings: ``DEFAULT_TRAIN`` keys, plus ``network`` (overrides of the preset's network config),
    ``conditional`` (class-conditional) or ``captions = "templates"`` (text-conditional on template captions of the
    class names, :func:`~ambient_omni.data.captions.template_captions`), ``label_dropout``.
    """
    from ambient_omni.training.loop import TrainConfig, Trainer
    from ambient_omni.training.tasks import DenoiserSettings, DenoiserTask

    tcfg = {**DEFAULT_TRAIN, **cfg.get("train", {})}
    if (run / "model" / "model.safetensors").is_file():
        return run / "model"
    settings = DenoiserSettings(data=str(dataset_dir), annotations=str(annotations) if annotations else None,
                                preset=tcfg["preset"], network_overrides=tcfg.get("network", {}),
                                batch_size=tcfg["batch"], seed=int(cfg["seed"]),
                                ambient_weight=tcfg.get("ambient_weight", True),
                                variance_weight=tcfg.get("variance_weight", False), buffer_s=tcfg.get("buffer_s", 4.0),
                                loss_target=tcfg.get("loss_target", "ambient"),
                                conditional=bool(tcfg.get("conditional", False)),
                                captions=_template_captions(dataset_dir, run) if tcfg.get("captions") else None,
                                label_dropout=float(tcfg.get("label_dropout", 0.1)))
    config = TrainConfig(total_images=tcfg["images"], batch_size=tcfg["batch"], lr=tcfg["lr"],
                         lr_rampup_images=tcfg["lr_rampup"], ema_halflife_images=tcfg["ema_halflife"],
                         checkpoint_every=tcfg["checkpoint_every"], seed=int(cfg["seed"]))
    trainer = Trainer(DenoiserTask(settings), config, run)
    adopted = trainer.adopt_shorter_run(siblings)
    if adopted is not None:
        print(f"{run}: continuing from {adopted.json_path.parent.parent} at step {adopted.step} (same trajectory)")
    return trainer.run()


def _template_captions(dataset_dir: Path, run: Path) -> str:
    """The template caption file of a dataset, written once next to the run: ``run/../captions.jsonl``."""
    from ambient_omni.data.captions import template_captions, write_captions
    from ambient_omni.data.dataset_folder import load_dataset

    path = run.parent / "captions.jsonl"
    if not path.is_file():
        data = load_dataset(dataset_dir)
        write_captions(path, template_captions(data.labels.numpy(), data.info.get("class_names", [])))
    return str(path)


def denoiser_runs(root: Path, exclude: Path | None = None) -> list[Path]:
    """Every denoiser run folder of benchmark folder ``root`` but ``exclude``: the cells' ``run/`` folders and
    the shared ``denoisers/`` (an ``ood-crops`` cell's target-only denoiser). A new run adopts the furthest
    checkpoint among them on its own trajectory, so a target-only cell and the crops stage of the same seed
    train once."""
    runs = [d / "run" for d in (root / "cells").glob("*")] + list((root / "denoisers").glob("*"))
    return sorted(r for r in runs if r != exclude)


def _annotation_bytes(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None and path.is_file() else None


def reusable_runs(other_root: Path, annotations: Path | None) -> list[Path]:
    """The denoiser runs of another benchmark folder ``other_root`` (``ambient bench --reuse``) that a run
    training on ``annotations`` may adopt. The trajectory check of :meth:`Trainer.adopt_shorter_run` compares
    the dataset by content but the annotation file only by name, which is enough inside one folder (one file
    per name) but not across folders; so a run is offered only if its folder's annotation file of that name
    holds the same bytes as ``annotations`` now (or neither run has one). In practice that admits the runs
    of the ``clean-only``, ``all-data``, ``fixed`` and ``ood-fixed`` methods: ``classifier`` and ``ood-crops``
    annotation files name the classifiers of their own folder, so they never match across folders."""
    mine = _annotation_bytes(annotations)
    same: dict[Path | None, bool] = {}  # runs of one folder share a few annotation files: read each once
    offered = []
    for run in denoiser_runs(other_root):
        config = run / "config.json"
        if not config.is_file():
            continue
        used = read_json(config).get("task", {}).get("annotations")
        theirs = other_root / "annotations" / used["file"] if isinstance(used, dict) else None
        if theirs not in same:
            same[theirs] = (theirs is None) == (annotations is None) and _annotation_bytes(theirs) == mine
        if same[theirs]:
            offered.append(run)
    return offered


def _with_source_code(adopted: dict[str, Any]) -> dict[str, Any]:
    """An adoption record plus the code version of the cell whose run it continued (that cell's
    ``result.json``, when the run was a finished cell's): the adopted steps ran that code, not this sweep's."""
    source = Path(adopted["run"]).parent / "result.json"
    code = read_json(source).get("code") if source.is_file() else None
    return {**adopted, "code": code} if code else adopted


_ANNOTATION_STAGES = {
    "all-data": "none: every image is treated as clean",
    "clean-only": "the corrupted images are never used (sigma_min = inf)",
    "fixed": "one sigma_min for every corrupted image",
    "classifier": "training the noise classifier, then sigma_min per corrupted image (cached once made)",
    "crossing": "noise classifier on all but a held-out share, its held-out accuracy, then the theory's crossing",
    "ood-fixed": "one sigma_max for every out-of-distribution image",
    "ood-crops": "target-only denoiser, locality map, crop classifiers, then sigma_max per image (cached)",
    "quality": "quality scores of the pixel images, the best share clean, sigma_min for the rest",
}


def _annotation_lock(cfg: dict[str, Any]) -> str:
    """Which lock a cell's annotation stage takes: cells that train a noise classifier share one per classifier
    seed (their classifier and its files), every other cell one for the cheap shared annotations. Two bench
    processes (e.g. one per training seed) then never make the same shared stage at once: one waits."""
    if cfg["method"] in ("classifier", "crossing"):
        return f"classifier-seed{classifier_settings(cfg)['seed']}"
    if cfg["method"] == "ood-crops":  # its target denoiser and crop classifiers (crops.seed) take long
        return f"crops-seed{cfg.get('crops', {}).get('seed', 0)}"
    return "shared"


def run_cell(cfg: dict[str, Any], root: Path, cell_dir: Path, reuse: Iterable[Path] = (),
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """All stages of one cell; returns ``{"metrics", "paths"}``. A ``noise-check`` cell stops at the
    annotations (:mod:`ambient_omni.experiments.noise_sanity`): its metrics are ``{"annotation": ...}``.
    The denoiser may continue a run of ``root`` or of a ``reuse`` folder on its trajectory
    (:func:`reusable_runs`); the result then names it under ``paths["adopted"]``."""
    if cfg["method"] == "noise-check":
        from ambient_omni.experiments.noise_sanity import NoiseCheckConfig, run_noise_check

        return {"metrics": {"annotation": run_noise_check(NoiseCheckConfig.from_cell(cfg), cell_dir)},
                "paths": {"classifier": str(cell_dir / "classifier" / "model")}}
    log("  stage 1 of 4: the dataset")
    with exclusive_lock(root / "locks" / "datasets.lock", "the datasets", wait=log):
        dataset_dir = pixel_dir = make_dataset(cfg, root)
        if cfg.get("latent"):
            log("  stage 1b: the autoencoder and the latent dataset (cached once made)")
            dataset_dir = latent_dataset(cfg, pixel_dir, root)
    log(f"  stage 2 of 4: annotations: {_ANNOTATION_STAGES.get(cfg['method'], cfg['method'])}")
    with exclusive_lock(root / "locks" / f"annotations-{_annotation_lock(cfg)}.lock", "the annotations", wait=log):
        annotations = make_annotations(cfg, dataset_dir, root, pixel_dir)
    run = cell_dir / "run"
    siblings = denoiser_runs(root, run) + [r for other in reuse for r in reusable_runs(Path(other), annotations)]
    train = {**DEFAULT_TRAIN, **cfg.get("train", {})}
    log(f"  stage 3 of 4: training the denoiser ({train['preset']}, {train['images']:,} images seen; resumes "
        "from its checkpoints)")
    model_dir = train_denoiser(cfg, dataset_dir, annotations, run, siblings)
    ecfg = {**DEFAULT_EVAL, **cfg.get("eval", {})}
    log(f"  stage 4 of 4: sampling {ecfg['n_samples']:,} images and evaluating them against {ecfg['reference']}")
    metrics = sample_and_evaluate(cfg, model_dir, dataset_dir, cell_dir / "samples",
                                  pixel_dir if dataset_dir != pixel_dir else None)
    if (annotation := annotation_metrics(cfg, annotations)) is not None:
        metrics["annotation"] = annotation
    paths = {"dataset": str(dataset_dir), "annotations": str(annotations) if annotations else None,
             "model": str(model_dir)}
    if (adopted := run / ADOPTED_RECORD).is_file():
        paths["adopted"] = _with_source_code(read_json(adopted))
    return {"metrics": metrics, "paths": paths}
