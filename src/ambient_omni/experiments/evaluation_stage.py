"""The last stage of a benchmark cell: sample its denoiser and evaluate the samples.

A class-conditional model is asked for class ``seed mod classes``, a text model for the caption "a photo of a
<class>" (:data:`~ambient_omni.data.captions.TEMPLATES`), at guidance ``eval.guidance`` (default 1: none); the
classes asked for give the per-class coverage. A latent model's samples are decoded before evaluation and its
memorized share is measured against the clean images of the pixel dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_omni.files import write_json

DEFAULT_EVAL = {"n_samples": 2000, "first_seed": 0, "steps": 18, "features": ["fmnist-classifier"],
                "reference": "fashion-mnist:test", "n_ref": None, "batch": 64, "bf16": False}


def _conditioning(config: dict[str, Any], data: Any, seeds: list[int]) -> tuple[Any, Any]:
    """``(labels for the sampler, the classes asked for)`` of a cell's model: class ``seed mod classes`` for a
    conditional model, the caption "a photo of a <class>" for a text model, none (``None, None``) otherwise."""
    from ambient_omni.training.sampling import sample_labels

    network, classes = config["network"], int(config.get("num_classes", 0))
    if network.get("label_dim"):
        labels = sample_labels(seeds, classes, None)
        return labels, labels.numpy()
    if network.get("text_dim"):
        from ambient_omni.data.captions import TEMPLATES, caption_embeddings

        names = [n.lower().replace("/", " or ") for n in data.info.get("class_names", [])]
        wanted = np.asarray(seeds) % len(names)
        return caption_embeddings([TEMPLATES[0].format(names[c]) for c in wanted]), wanted
    return None, None


def sample_and_evaluate(cfg: dict[str, Any], model_dir: Path, dataset_dir: Path, out: Path,
                        pixel_dir: Path | None = None) -> dict[str, Any]:
    """Sample ``n_samples`` images (seeds ``first_seed..``), save them, and evaluate them. A latent cell's samples
    are decoded first, and its memorized share is measured against the clean images of ``pixel_dir``."""
    from ambient_omni.data.imageset import to_uint8
    from ambient_omni.data.dataset_folder import load_dataset
    from ambient_omni.metrics.evaluate import evaluate
    from ambient_omni.training.preview import save_grid
    from ambient_omni.training.sampling import decode_samples, generate, load_denoiser

    ecfg = {**DEFAULT_EVAL, **cfg.get("eval", {})}
    model, config, _ = load_denoiser(model_dir)
    data = load_dataset(dataset_dir)
    seeds = list(range(ecfg["first_seed"], ecfg["first_seed"] + ecfg["n_samples"]))
    labels, wanted = _conditioning(config, data, seeds)
    samples, _ = generate(model, seeds, tuple(data.images.shape[1:]), steps=ecfg["steps"], batch_size=ecfg["batch"],
                          bf16=ecfg["bf16"], clamp=data.latent is None, labels=labels,
                          guidance=float(ecfg.get("guidance", 1.0)))
    images = decode_samples(samples, {"latent": data.latent})
    if pixel_dir is not None:
        data = load_dataset(pixel_dir)
    codes = to_uint8(images).numpy()
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "samples.npz", images=codes, seeds=np.array(seeds))
    save_grid(out / "grid.png", images[:64], scale=2)
    clean = data.images[torch.tensor([p == "clean" for p in data.provenance])]
    metrics = evaluate(images, ecfg["reference"], ecfg["features"], n_ref=ecfg["n_ref"], train_set=clean,
                       batch_size=ecfg["batch"], sample_labels=wanted)
    metrics["sampler"] = {"steps": ecfg["steps"], "seeds": f"{seeds[0]}-{seeds[-1]}", "solver": "heun",
                          "bf16": ecfg["bf16"]}
    write_json(out / "metrics.json", metrics)
    return metrics


__all__ = ["DEFAULT_EVAL", "sample_and_evaluate"]
