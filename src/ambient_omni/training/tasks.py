"""The denoiser task: dataset folder + annotations -> sigma-first batches -> ambient loss on EDMPrecond(UNet).

Data pipeline of global step ``k`` (global batch ``B``, ``W`` processes): ``SigmaFirstSampler``
draws ``B`` pairs (sigma_t, admissible image) as a pure function of ``(seed, k)``; rank ``r``
takes its ``B / W`` of them; ``AmbientBatchDataset`` attaches the images, so each batch carries
``image, label, id, sigma_t, sigma_tn``. The loss is :class:`~ambient_omni.diffusion.ambient_loss.AmbientLoss`
(plain EDM loss for clean images, ``sigma_tn = 0``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.seeding import derive_seed

_PURPOSE_INIT = 3
# Settings that do not change the trained weights (free to change when resuming).
_NOT_TRAJECTORY = ("data", "annotations", "captions", "workers", "preview_n", "preview_steps")
# Settings added after runs already existed, with the default that reproduces the older behaviour: the
# config stores them only when they differ from it, so runs made before them still resume.
_ADDED_LATER = {"variance_weight": False, "loss_target": "ambient"}
TEXT_DIM = 384
"""Width of the caption embeddings (all-MiniLM-L6-v2) a text-conditional denoiser takes."""


MAX_CLASSES = 100_000
"""The most classes ``--cond`` accepts: the label embedding has one row per class, so a stray label of
10^12 must be an error, not a 128 TB allocation."""


@dataclass
class DenoiserSettings:
    """Everything that defines a denoiser training task (besides the optimizer, see ``TrainConfig``).

    ``batch_size`` is the global batch. ``conditional`` trains a class-conditional model
    (``label_dim`` = number of classes, labels dropped with ``label_dropout`` for guidance).
    ``captions`` (a caption file, :mod:`ambient_omni.data.captions`) trains a text-conditional model instead:
    each image's caption embedding conditions it, dropped with ``label_dropout`` (caption dropout).
    ``preview_*``: the EMA sample grid written every ``TrainConfig.preview_every`` steps.
    """

    data: str
    annotations: str | None = None
    captions: str | None = None
    preset: str = "fmnist-small"
    network_overrides: dict[str, Any] = field(default_factory=dict)
    conditional: bool = False
    label_dropout: float = 0.1
    p_mean: float = -1.2
    p_std: float = 1.2
    buffer_s: float = 4.0
    ambient_weight: bool = True
    variance_weight: bool = False
    loss_target: str = "ambient"
    batch_size: int = 64
    seed: int = 0
    workers: int = 0
    preview_n: int = 64
    preview_steps: int = 12


def _annotation_table(dataset: Any, path: str | None) -> Any:
    from ambient_omni.data.annotations import AnnotationTable, read_annotations

    ids = dataset.ids.numpy()
    if path is None:
        return AnnotationTable.all_clean(ids, dataset_sha256=dataset.sha256)
    return read_annotations(path, ids=ids, dataset_sha256=dataset.sha256)


def _counts(table: Any) -> dict[str, int]:
    """How many images are clean, high-noise only, low-noise only, or both."""
    smin, smax = np.asarray(table.sigma_min), np.asarray(table.sigma_max)
    return {"clean": int((smin == 0).sum()), "high_noise": int(((smin > 0) & np.isfinite(smin)).sum()),
            "low_noise": int((smax > 0).sum()), "unusable_high": int(np.isinf(smin).sum())}


class DenoiserTask:
    """Train ``EDMPrecond(UNet)`` with the ambient loss on a dataset folder (see module doc)."""

    def __init__(self, settings: DenoiserSettings) -> None:
        from ambient_omni.data.dataset_folder import load_dataset
        from ambient_omni.diffusion.ambient_loss import AmbientLoss
        from ambient_omni.networks.registry import build_network, preset_config

        self.settings = s = settings
        self.dataset = load_dataset(s.data)
        self.table = _annotation_table(self.dataset, s.annotations)
        c, h, w = (int(v) for v in self.dataset.images.shape[1:])
        self.image_shape = (c, h, w)
        self.num_classes = int(self.dataset.labels.max()) + 1 if len(self.dataset) else 0
        overrides: dict[str, Any] = {"in_channels": c, "out_channels": c, **s.network_overrides}
        self.text = self._caption_embeddings(s)
        if self.text is not None:
            overrides.update(text_dim=TEXT_DIM, label_dropout=s.label_dropout)
        if s.conditional:
            if self.num_classes <= 0:
                raise AmbientError(f"{s.data}: --cond needs class labels, but every label is -1")
            used = int(torch.unique(self.dataset.labels[self.dataset.labels >= 0]).numel())
            if self.num_classes > MAX_CLASSES:
                raise AmbientError(f"{s.data}: --cond: the largest label is {self.num_classes - 1} ({used} distinct "
                                   f"labels); labels must be class numbers 0..{MAX_CLASSES - 1} (relabel them 0..K-1)")
            overrides.update(label_dim=self.num_classes, label_dropout=s.label_dropout)
        self.network = preset_config(s.preset, **overrides)
        if self.network.get("kind") != "denoiser":
            raise AmbientError(f"--preset {s.preset}: not a denoiser preset (kind {self.network.get('kind')!r})")
        self.model: nn.Module = build_network(self.network, init_seed=derive_seed(s.seed, _PURPOSE_INIT))
        self.loss_fn = AmbientLoss(sigma_data=float(self.network.get("sigma_data", 0.5)), ambient_weight=s.ambient_weight,
                                   variance_weight=s.variance_weight, buffer_s=s.buffer_s, target=s.loss_target,
                                   noise_seed=int(self.dataset.info.get("seed", 0)))

    def _caption_embeddings(self, s: DenoiserSettings) -> torch.Tensor | None:
        """The caption embedding of every image (``None`` without a caption file)."""
        if s.captions is None:
            return None
        if s.conditional:
            raise AmbientError("--captions and --cond: a model is conditioned on captions or on class labels, not both")
        from ambient_omni.data.captions import caption_embeddings, read_captions

        return caption_embeddings(read_captions(s.captions, len(self.dataset)))

    def sampler(self, start_step: int, rank: int, world_size: int) -> Any:
        """The sigma-first batch sampler of this rank, positioned at global batch ``start_step``."""
        from ambient_omni.diffusion.sigma_sampler import SigmaFirstSampler

        s = self.settings
        return SigmaFirstSampler(self.table.sigma_min, self.table.sigma_max, batch_size=s.batch_size // world_size,
                                 p_mean=s.p_mean, p_std=s.p_std, buffer_s=s.buffer_s, seed=s.seed,
                                 rank=rank, world_size=world_size, start_step=start_step)

    def batches(self, start_step: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        """This rank's share of global batches ``start_step, start_step + 1, ...`` (endless)."""
        from torch.utils.data import DataLoader

        from ambient_omni.diffusion.sigma_sampler import AmbientBatchDataset

        s = self.settings
        sampler = self.sampler(start_step, rank, world_size)
        if s.workers == 0:  # the same batches as the DataLoader's, by tensor indexing (SigmaFirstSampler)
            labels = self.text if self.text is not None else self.dataset.labels
            yield from sampler.tensor_batches(self.dataset.images, labels, self.dataset.ids)
            return
        if self.text is not None:
            raise AmbientError("caption conditioning uses the tensor batch path: train with workers = 0")
        loader = DataLoader(AmbientBatchDataset(self.dataset), batch_sampler=sampler, num_workers=s.workers,
                            persistent_workers=False)
        yield from loader

    def loss(self, model: nn.Module, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        """Per-sample ambient loss ``(B,)`` (eps drawn from ``generator``)."""
        return self.loss_fn(model, batch, generator)

    def input_paths(self) -> dict[str, str]:
        """Where the run's input files are (absolute), for the run folder's ``config.json``: ``ambient report``
        finds the annotation file there."""
        return {"data": str(Path(self.settings.data).resolve()),
                **({"annotations": str(Path(self.settings.annotations).resolve())} if self.settings.annotations else {})}

    def input_hashes(self) -> dict[str, str]:
        """SHA-256 of the annotation and caption files' bytes (those there are): :meth:`config` names the files
        only, so a resumed run must not continue on another file of the same name and counts."""
        files = {"annotations": self.settings.annotations, "captions": self.settings.captions}
        return {k: hashlib.sha256(Path(f).read_bytes()).hexdigest() for k, f in files.items() if f}

    def config(self) -> dict[str, Any]:
        """Model-folder config: kind, network (rebuildable by ``build_network``) and how it was trained."""
        s = self.settings
        info = self.dataset.info
        return {
            "kind": "denoiser",
            "network": self.network,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "class_names": list(info.get("class_names", [])),
            "data": {"name": Path(s.data).name, "n": len(self.dataset), "sha256": self.dataset.sha256},
            "annotations": ({"file": Path(s.annotations).name, "dataset_sha256": self.table.dataset_sha256}
                            if s.annotations else "none: every image clean"),
            "annotation_counts": _counts(self.table),
            **({"latent": self.dataset.latent} if self.dataset.latent is not None else {}),
            **({"text": {"encoder": "all-MiniLM-L6-v2", "dim": TEXT_DIM, "captions": Path(s.captions).name}}
               if s.captions else {}),
            "settings": {k: v for k, v in asdict(s).items()
                         if k not in _NOT_TRAJECTORY and not (k in _ADDED_LATER and v == _ADDED_LATER[k])},
        }

    def describe(self) -> str:
        """One line for the log: the data and how it is used."""
        counts = _counts(self.table)
        source = (f"annotations {self.settings.annotations}" if self.settings.annotations
                  else "no annotation file: every image treated as clean (AnnotationTable.all_clean)")
        return f"{len(self.dataset)} images {list(self.image_shape)} from {self.settings.data}; {source}; {counts}"

    def make_preview(self, ema_model: nn.Module, step: int, out_dir: Path) -> Path:
        """EMA samples from fixed seeds ``0..preview_n-1`` as ``out_dir/preview-<step>.png``."""
        from ambient_omni.training.preview import save_grid
        from ambient_omni.training.sampling import decode_samples, generate

        s = self.settings
        latent = self.dataset.latent is not None
        samples, _ = generate(ema_model, seeds=list(range(s.preview_n)), shape=self.image_shape,
                              steps=s.preview_steps, batch_size=s.preview_n, clamp=not latent)
        images = decode_samples(samples, {"latent": self.dataset.latent})
        return save_grid(Path(out_dir) / f"preview-{step:08d}.png", images, scale=2)
