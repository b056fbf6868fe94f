"""The stages of latent benchmark cells (issue 19): the cell's autoencoder and latent dataset, and the
quality-score annotation, each computed once per configuration and cached under the benchmark folder.

A cell with a ``latent`` table trains its diffusion model on the latents of its dataset: ``root/autoencoders/``
holds the autoencoder (trained on every image of the pixel dataset, corrupted ones included: it is the data
there is), ``root/datasets/<pixel>-latent-<hash>`` the encoded folder. Its samples are decoded before evaluation
and its memorized share is measured against the clean pixel images. The ``quality`` method scores the pixel
images (a built-in scorer of :mod:`ambient_omni.annotate.quality_scores`) and annotates the cell's dataset, in
pixels or latents alike, by :func:`~ambient_omni.annotate.quality.quality_table`: the clean images are the best
``clean_fraction`` by score, whatever their provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ambient_omni.errors import AmbientError
from ambient_omni.experiments.stage_keys import config_hash, mark_stage, stage_done

DEFAULT_LATENT = {"preset": "fmnist-ae", "network": {}, "images": 50_000, "batch": 64, "lr": 1e-3, "lr_rampup": 2000,
                  "ema_halflife": 2000, "beta": 1e-4, "seed": 0, "checkpoint_every": 500}
"""``[base.latent]`` of a latent cell: the autoencoder's preset (``network``: overrides of its config) and training
(as ``ambient autoencoder train``)."""
DEFAULT_QUALITY = {"scorer": "sharpness", "clean_fraction": 0.1, "rule": "fraction", "sigma_min": None,
                   "sigma_range": None}
"""``quality`` options of a ``quality`` cell (as ``ambient annotate quality``; ``sigma_min`` in the units of the
cell's dataset: latent units for a latent cell)."""


def latent_dataset(cfg: dict[str, Any], pixel_dir: Path, root: Path) -> Path:
    """The latent dataset folder of a cell's pixel dataset, with its autoencoder trained first (both cached)."""
    from ambient_omni.data.dataset_folder import load_dataset, write_dataset
    from ambient_omni.latents import AutoencoderCodec, encode_dataset
    from ambient_omni.networks.registry import preset_config
    from ambient_omni.training.autoencoder_task import train_autoencoder
    from ambient_omni.training.loop import TrainConfig

    lcfg = {**DEFAULT_LATENT, **cfg["latent"]}
    unknown = sorted(set(lcfg) - set(DEFAULT_LATENT))
    if unknown:
        raise AmbientError(f"latent: unknown option(s) {unknown}; known: {sorted(DEFAULT_LATENT)}")
    key = config_hash({"data": pixel_dir.name, **lcfg})
    folder = root / "datasets" / f"{pixel_dir.name}-latent-{key}"
    if stage_done(folder, key):
        return folder
    data = load_dataset(pixel_dir)
    config = TrainConfig(total_images=lcfg["images"], batch_size=lcfg["batch"], lr=lcfg["lr"],
                         lr_rampup_images=lcfg["lr_rampup"], ema_halflife_images=lcfg["ema_halflife"],
                         checkpoint_every=lcfg["checkpoint_every"], seed=int(lcfg["seed"]))
    model = train_autoencoder(preset_config(lcfg["preset"], in_channels=int(data.images.shape[1]), **lcfg["network"]), data.images,
                              root / "autoencoders" / f"{pixel_dir.name}-{key}", beta=lcfg["beta"], config=config,
                              info={"data": str(pixel_dir)})
    write_dataset(folder, encode_dataset(data, AutoencoderCodec(model)), command=f"latent of {pixel_dir.name}",
                  overwrite=True)
    mark_stage(folder, key, spec=lcfg)
    return folder


def quality_annotations(cfg: dict[str, Any], dataset_dir: Path, pixel_dir: Path, root: Path) -> Path:
    """The ``quality`` method's annotation file of ``dataset_dir``, from the scores of ``pixel_dir``'s images."""
    from ambient_omni.annotate.quality import dataset_scores, quality_table
    from ambient_omni.data.annotations import write_annotations
    from ambient_omni.data.dataset_folder import load_dataset

    qcfg = {**DEFAULT_QUALITY, **cfg.get("quality", {})}
    unknown = sorted(set(qcfg) - set(DEFAULT_QUALITY))
    if unknown:
        raise AmbientError(f"quality: unknown option(s) {unknown}; known: {sorted(DEFAULT_QUALITY)}")
    path = root / "annotations" / f"{dataset_dir.name}-quality-{config_hash(qcfg)}.jsonl"
    if path.exists():
        return path
    data = load_dataset(dataset_dir)
    scores = dataset_scores(load_dataset(pixel_dir), qcfg["scorer"])
    sigma_range = tuple(qcfg["sigma_range"]) if qcfg["sigma_range"] else None
    table = quality_table(scores, clean_fraction=qcfg["clean_fraction"], rule=qcfg["rule"],
                          sigma_min=qcfg["sigma_min"], sigma_range=sigma_range, provenance=data.provenance,
                          dataset_sha256=data.sha256, created_by={"pixels": pixel_dir.name})
    write_annotations(path, table)
    return path


__all__ = ["DEFAULT_LATENT", "DEFAULT_QUALITY", "latent_dataset", "quality_annotations"]
