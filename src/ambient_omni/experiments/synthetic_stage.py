"""The dataset of synthetic-data cells (issue 20, the paper's text-to-image recipe at small scale): a few real
images plus many images of a *teacher*, a small, quickly trained and so visibly imperfect generator.

With ``synthetic`` in a cell's configuration (:data:`DEFAULT_SYNTHETIC`) the cell's dataset is built in three
cached steps under the benchmark folder:

1. a seeded permutation of ``source`` splits it: the first ``teacher_n`` images train the teacher, the next
   ``clean_count`` are the student's real (clean) images, so the two never share an image;
2. the teacher (``root/teachers/<hash>/run``, class-conditional by default) trains for ``teacher_images`` images;
3. it draws ``count`` samples (seeds ``0..count-1``, class ``seed mod classes`` when conditional, Heun with
   ``steps`` steps) that join the real images as ``synthetic:teacher-<hash>`` with their classes as labels.

Synthetic images are low-quality data (:data:`~ambient_omni.data.mixed.LOW_QUALITY_KINDS`): every method that
handles corrupted images (``clean-only``, ``fixed``, ``classifier``) handles them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_omni.errors import AmbientError
from ambient_omni.experiments.stage_keys import config_hash, mark_stage, stage_done

DEFAULT_SYNTHETIC = {"teacher_n": 3000, "teacher_images": 60_000, "preset": "fmnist-small", "batch": 64,
                     "conditional": True, "seed": 0, "count": 6000, "steps": 18}


def _options(cfg: dict[str, Any]) -> dict[str, Any]:
    scfg = {**DEFAULT_SYNTHETIC, **cfg["synthetic"]}
    unknown = sorted(set(scfg) - set(DEFAULT_SYNTHETIC))
    if unknown:
        raise AmbientError(f"synthetic: unknown option(s) {unknown}; known: {sorted(DEFAULT_SYNTHETIC)}")
    return scfg


def _teacher(scfg: dict[str, Any], images: Any, folder: Path) -> Path:
    """Train (or resume) the teacher on ``images`` (an ImageSet) in ``folder``; its model folder."""
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.mixed import from_image_set
    from ambient_omni.training.loop import TrainConfig, Trainer
    from ambient_omni.training.tasks import DenoiserSettings, DenoiserTask

    if (folder / "run" / "model" / "model.safetensors").is_file():
        return folder / "run" / "model"
    if not (folder / "data" / "dataset.json").is_file():
        write_dataset(folder / "data", from_image_set(images, "clean", "teacher"), overwrite=True)
    settings = DenoiserSettings(data=str(folder / "data"), preset=scfg["preset"], conditional=scfg["conditional"],
                                batch_size=scfg["batch"], seed=int(scfg["seed"]))
    config = TrainConfig(total_images=scfg["teacher_images"], batch_size=scfg["batch"], seed=int(scfg["seed"]))
    return Trainer(DenoiserTask(settings), config, folder / "run").run()


def _samples(model_dir: Path, scfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's ``count`` samples and the classes they were drawn for (-1 when unconditional)."""
    from ambient_omni.training.sampling import generate, load_denoiser, sample_labels

    model, config, _ = load_denoiser(model_dir)
    classes = int(config.get("num_classes", 0)) if config["network"].get("label_dim") else 0
    seeds = list(range(int(scfg["count"])))
    labels = sample_labels(seeds, classes, None)
    return generate(model, seeds, tuple(config["image_shape"]), steps=int(scfg["steps"]), labels=labels,
                    progress=True)


def synthetic_dataset(cfg: dict[str, Any], root: Path) -> Path:
    """The cell's dataset folder: ``clean_count`` real images plus the teacher's samples (module doc)."""
    from ambient_omni.data.dataset_folder import write_dataset
    from ambient_omni.data.imageset import ImageSet
    from ambient_omni.data.mixed import Part, combine_datasets
    from ambient_omni.data.readers import read_source
    from ambient_omni.seeding import generator

    scfg = _options(cfg)
    source = cfg.get("source") or "fashion-mnist:train"
    spec = {"source": source, "clean_count": cfg.get("clean_count"), "data_seed": cfg.get("data_seed"),
            "synthetic": scfg}
    key = config_hash(spec)
    folder = root / "datasets" / key
    if stage_done(folder, key):
        return folder
    real = read_source(source)
    seed, n_real = int(cfg.get("data_seed") or 0), int(cfg.get("clean_count") or 0)
    if scfg["teacher_n"] + n_real > len(real) or n_real < 1:
        raise AmbientError(f"synthetic: {scfg['teacher_n']} teacher images + {n_real} real ones need that many "
                           f"images in {source} ({len(real)}), and clean_count >= 1")
    order = torch.randperm(len(real), generator=generator(seed, "synthetic-split"))
    teacher_part, real_part = order[: scfg["teacher_n"]], order[scfg["teacher_n"] : scfg["teacher_n"] + n_real]
    teacher = _teacher(scfg, real.subset(np.sort(teacher_part.numpy())), root / "teachers" / key)
    images, labels = _samples(teacher, scfg)
    fake = ImageSet(images, labels.to(torch.int64), [f"teacher[{i}]" for i in range(len(images))],
                    list(real.class_names))
    parts = [Part(real.subset(np.sort(real_part.numpy())), "clean", source),
             Part(fake, f"synthetic:teacher-{key[:8]}", "teacher")]
    write_dataset(folder, combine_datasets(parts, seed), command=f"synthetic dataset {key}", overwrite=True)
    mark_stage(folder, key, spec=spec)
    return folder


__all__ = ["DEFAULT_SYNTHETIC", "synthetic_dataset"]
