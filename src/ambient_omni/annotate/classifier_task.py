"""Training task for the noise-conditional quality classifier and the crop classifiers (PAPER 2.3, 2.4),
run by the shared :class:`~ambient_omni.training.loop.Trainer`.

Positives (label 1): clean / target images. Negatives (label 0): corrupted / OOD images.
Batch ``k`` is a pure function of ``(seed, k)``:

- balanced (default): ``B/2`` positives and ``B/2`` negatives drawn uniformly with replacement;
- unbalanced: ``B`` draws uniformly from the union (the class ratio of the data);
- crops (``crop_size = C``): each drawn image is replaced by a uniformly placed ``C x C`` crop of it
  (REAL crops: the classifier only ever sees ``C x C`` inputs).

Loss per sample: ``BCE(f(x + sigma * eps, sigma), label)`` with ``sigma ~ LogNormal(p_mean, p_std)``,
optionally truncated to ``sigma <= sigma_cap`` by the inverse CDF (crop classifiers work at low noise).

:func:`train_classifier` is the one entry point that trains such a classifier into a run folder
(used by ``ambient classifier train`` and the benchmark pipeline). After training it measures how well
the classifier separates the classes at a low training sigma (:func:`separation_check`, written to
``check.json`` in the run folder) and warns when a noise classifier stayed at chance: such a classifier's
P(clean) sits near 0.5 > tau at every sigma, so annotation would admit every corrupted image at every
noise level (seen for Gaussian noise of std 0.05, docs/RESULTS.md section 3).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.files import write_json
from ambient_omni.networks.registry import build_network, network_config
from ambient_omni.seeding import derive_seed, generator
from ambient_omni.training.distributed import barrier
from ambient_omni.training.loop import Trainer, TrainConfig

NOISE_SIGMAS = (-1.2, 1.2, None)
"""``(p_mean, p_std, sigma_cap)`` of a noise classifier: the denoiser's training log-normal."""
CROP_SIGMAS = (-2.3, 1.0, 0.5)
"""``(p_mean, p_std, sigma_cap)`` of a crop classifier: low noise only."""
CHECK_QUANTILE = 0.1
"""The separation check's sigma: this quantile of the training sigma distribution."""
CHANCE_ACCURACY = 0.6
"""A noise classifier below this accuracy at the check's sigma is reported as not having learned."""


def classifier_kind(config: Any, where: str) -> str:
    """``"noise"`` or ``"crop"``: the kind of classifier a model folder's ``config`` describes (a
    ``classifier.kind`` record, else ``crop`` when it records a ``crop_size``, else ``noise``). Any other model
    (a denoiser, a bare network) is an :class:`AmbientError` naming ``where``: the one check shared by
    ``annotate noise`` and ``annotate crops``."""
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind != "classifier":
        raise AmbientError(f"{where}: a model of kind {kind!r}, not a classifier; "
                           "train one with `ambient classifier train`")
    info = config.get("classifier") or {}
    if not isinstance(info, dict):
        raise AmbientError(f"{where}: config.json 'classifier' must be an object, got {info!r}")
    if info.get("kind") in ("noise", "crop"):
        return str(info["kind"])
    return "crop" if info.get("crop_size") is not None else "noise"


def require_noise_classifier(config: Any, where: str) -> dict[str, Any]:
    """The ``classifier`` record of a noise classifier's model ``config``; a crop classifier or any model that
    is no classifier is an :class:`AmbientError` naming ``where`` (sigma_min needs a noise classifier)."""
    if classifier_kind(config, where) == "crop":
        size = (config.get("classifier") or {}).get("crop_size")
        raise AmbientError(f"{where} is a crop classifier ({size}x{size} crops): sigma_min needs a noise "
                           "classifier (ambient classifier train --kind noise)")
    return dict(config.get("classifier") or {})


def mass_below_cap(p_mean: float, p_std: float, cap: float | None) -> float:
    """``Phi((log cap - p_mean) / p_std)``: the log-normal's probability below ``cap`` (1 without a cap)."""
    return 1.0 if cap is None else 0.5 * (1.0 + math.erf((math.log(cap) - p_mean) / (p_std * math.sqrt(2.0))))


def truncated_lognormal(
    n: int, p_mean: float, p_std: float, cap: float | None, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``sigma = exp(p_mean + p_std * Phi^-1(u * Phi((log cap - p_mean) / p_std)))``, ``u ~ U(0,1)``
    (``cap = None``: the plain log-normal)."""
    u = torch.rand(n, generator=generator, device=generator.device).to(device)
    top = mass_below_cap(p_mean, p_std, cap)
    z = math.sqrt(2.0) * torch.erfinv((2.0 * u * top - 1.0).clamp(-1 + 1e-7, 1 - 1e-7))
    return torch.exp(p_mean + p_std * z)


def random_crops(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One uniformly placed ``size x size`` crop per image of ``(B, C, H, W)``."""
    b, _, h, w = images.shape
    if size > min(h, w):
        raise AmbientError(f"--crop-size {size} is larger than the {h}x{w} images")
    top = torch.randint(0, h - size + 1, (b,), generator=generator)
    left = torch.randint(0, w - size + 1, (b,), generator=generator)
    return torch.stack([images[i, :, t : t + size, l : l + size] for i, (t, l) in enumerate(zip(top.tolist(), left.tolist()))])


class ClassifierTask:
    """Binary noise-conditional classification of ``positives`` (1) vs ``negatives`` (0)."""

    def __init__(
        self,
        model: nn.Module,
        positives: torch.Tensor,
        negatives: torch.Tensor,
        batch_size: int,
        balanced: bool = True,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        sigma_cap: float | None = None,
        crop_size: int | None = None,
        seed: int = 0,
        info: dict[str, Any] | None = None,
    ) -> None:
        if len(positives) == 0 or len(negatives) == 0:
            raise AmbientError(f"classifier training needs both classes: {len(positives)} positive and "
                               f"{len(negatives)} negative images")
        if balanced and batch_size % 2:
            raise AmbientError(f"--batch {batch_size} must be even for balanced sampling")
        self.model = model
        self.positives, self.negatives = positives.float(), negatives.float()
        self.batch_size, self.balanced = batch_size, balanced
        self.p_mean, self.p_std, self.sigma_cap = p_mean, p_std, sigma_cap
        self.crop_size, self.seed, self.info = crop_size, seed, dict(info or {})

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Global batch ``step``: images and float labels."""
        gen = generator(self.seed, "classifier-batch", step)
        n_pos, n_neg = len(self.positives), len(self.negatives)
        if self.balanced:
            half = self.batch_size // 2
            pos = torch.randint(0, n_pos, (half,), generator=gen)
            neg = torch.randint(0, n_neg, (half,), generator=gen)
            images = torch.cat([self.positives[pos], self.negatives[neg]])
            labels = torch.cat([torch.ones(half), torch.zeros(half)])
        else:
            idx = torch.randint(0, n_pos + n_neg, (self.batch_size,), generator=gen)
            is_pos = idx < n_pos
            images = torch.where(is_pos[:, None, None, None], self.positives[idx.clamp(max=n_pos - 1)],
                                 self.negatives[(idx - n_pos).clamp(min=0)])
            labels = is_pos.float()
        if self.crop_size is not None:
            images = random_crops(images, self.crop_size, gen)
        return images, labels

    def batches(self, start_step: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        """This rank's contiguous share of global batches ``start_step, start_step + 1, ...``."""
        share = self.batch_size // world_size
        step = start_step
        while True:
            images, labels = self._batch(step)
            sl = slice(rank * share, (rank + 1) * share)
            yield {"image": images[sl], "label": labels[sl]}
            step += 1

    def loss(self, model: nn.Module, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        """Per-sample BCE of ``model(x + sigma eps, sigma)`` against the labels."""
        x = batch["image"]
        sigma = truncated_lognormal(len(x), self.p_mean, self.p_std, self.sigma_cap, generator, x.device)
        eps = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)
        logits = model(x + sigma[:, None, None, None] * eps, sigma)
        return F.binary_cross_entropy_with_logits(logits.float(), batch["label"].float(), reduction="none")

    def config(self) -> dict[str, Any]:
        """Model-folder config: kind ``classifier``, the network and the training settings."""
        return {
            "kind": "classifier",
            "network": network_config(self.model),
            "classifier": {
                "balanced": self.balanced, "p_mean": self.p_mean, "p_std": self.p_std,
                "sigma_cap": self.sigma_cap, "crop_size": self.crop_size,
                "positives": len(self.positives), "negatives": len(self.negatives), **self.info,
            },
        }

    def describe(self) -> str:
        """One line for the log."""
        crop = f", {self.crop_size}x{self.crop_size} crops" if self.crop_size else ""
        return (f"classifier: {len(self.positives)} positive vs {len(self.negatives)} negative images, "
                f"{'balanced' if self.balanced else 'unbalanced'} batches{crop}")


def train_classifier(
    network: dict[str, Any],
    positives: torch.Tensor,
    negatives: torch.Tensor,
    out: str | os.PathLike,
    *,
    crop_size: int | None = None,
    balanced: bool = True,
    p_mean: float | None = None,
    p_std: float | None = None,
    sigma_cap: float | None = None,
    total_images: int = TrainConfig.total_images,
    steps: int | None = None,
    batch_size: int = TrainConfig.batch_size,
    lr: float = TrainConfig.lr,
    lr_rampup_images: int = TrainConfig.lr_rampup_images,
    ema_halflife_images: float = TrainConfig.ema_halflife_images,
    checkpoint_every: int = TrainConfig.checkpoint_every,
    log_every: int = TrainConfig.log_every,
    seed: int = 0,
    device: str | None = None,
    bf16: bool = True,
    progress: bool = True,
    info: dict[str, Any] | None = None,
) -> Path:
    """Train the classifier ``network`` (a ``kind: classifier`` config) on ``positives`` (1) vs
    ``negatives`` (0) into the run folder ``out`` (resuming from its latest checkpoint); return the
    model folder ``out/model`` with the final EMA weights.

    ``crop_size = None``: a noise classifier on whole images; ``crop_size = C``: a crop classifier on
    real ``C x C`` crops. ``p_mean`` / ``p_std`` / ``sigma_cap`` left ``None`` take the kind's defaults
    (:data:`NOISE_SIGMAS`, :data:`CROP_SIGMAS`). Optimization defaults are :class:`TrainConfig`'s.
    ``info`` is stored in the model config next to ``kind`` (``noise`` or ``crop``).
    """
    if network.get("kind") != "classifier":
        raise AmbientError("classifier training needs a network config of kind 'classifier', "
                           f"got {network.get('kind')!r}")
    if crop_size is not None and crop_size < 1:
        raise AmbientError(f"crop size must be a positive number of pixels, got {crop_size}")
    defaults = NOISE_SIGMAS if crop_size is None else CROP_SIGMAS
    p_mean = defaults[0] if p_mean is None else p_mean
    p_std = defaults[1] if p_std is None else p_std
    sigma_cap = defaults[2] if sigma_cap is None else sigma_cap
    if sigma_cap is not None and not (sigma_cap > 0 and math.isfinite(sigma_cap)):
        raise AmbientError(f"--sigma-cap must be a positive number, got {sigma_cap}")
    kind = "noise" if crop_size is None else "crop"
    model = build_network(network, init_seed=derive_seed(seed, "classifier-init"))
    task = ClassifierTask(model, positives, negatives, batch_size, balanced=balanced, p_mean=p_mean, p_std=p_std,
                          sigma_cap=sigma_cap, crop_size=crop_size, seed=seed, info={"kind": kind, **(info or {})})
    config = TrainConfig(total_images=total_images, steps=steps, batch_size=batch_size, lr=lr,
                         lr_rampup_images=lr_rampup_images, ema_halflife_images=ema_halflife_images,
                         checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, device=device, bf16=bf16,
                         progress=progress)
    folder = Trainer(task, config, out).run()
    if not dist.is_initialized() or dist.get_rank() == 0:
        check = separation_check(folder, positives, negatives, p_mean, p_std, sigma_cap, crop_size, seed)
        write_json(Path(out) / "check.json", check)
        if kind == "noise" and check["accuracy"] < CHANCE_ACCURACY:
            warnings.warn(
                f"{out}: the noise classifier did not learn to separate clean from corrupted images (accuracy "
                f"{check['accuracy']:.2f} at sigma {check['sigma']:.3g}, chance is 0.5); its annotations would admit "
                "corrupted images at every noise level. Try a lower lr, more images, or training sigmas nearer the "
                "corruption's scale (p_mean).", stacklevel=2)
    barrier()  # every rank may read check.json once train_classifier returns
    return folder


def separation_check(model_dir: str | os.PathLike, positives: torch.Tensor, negatives: torch.Tensor,
                     p_mean: float, p_std: float, sigma_cap: float | None, crop_size: int | None, seed: int,
                     images: int = 256) -> dict[str, Any]:
    """Accuracy of the trained classifier on ``n = min(images, len(positives), len(negatives))`` training
    images of EACH class (balanced, so a constant answer scores 0.5 however few clean images there are;
    crops of size ``crop_size`` if given) at ``sigma = exp(p_mean + p_std * Phi^-1(q))``,
    ``q = CHECK_QUANTILE`` of the (truncated) training log-normal: a low noise level, where a classifier that
    learned anything separates best. Returns ``{"sigma", "accuracy", "images": n, "quantile": q}``."""
    from statistics import NormalDist

    from ambient_omni.training.checkpoint import load_model

    top = mass_below_cap(p_mean, p_std, sigma_cap)
    sigma = math.exp(p_mean + p_std * NormalDist().inv_cdf(CHECK_QUANTILE * top))
    gen = generator(seed, "separation-check")
    n = min(images, len(positives), len(negatives))
    pos = positives[torch.randperm(len(positives), generator=gen)[:n]].float()
    neg = negatives[torch.randperm(len(negatives), generator=gen)[:n]].float()
    if crop_size is not None:
        pos, neg = random_crops(pos, crop_size, gen), random_crops(neg, crop_size, gen)
    accuracy = accuracy_at(load_model(model_dir), pos, neg, sigma, gen)
    return {"sigma": sigma, "accuracy": accuracy, "images": n, "quantile": CHECK_QUANTILE}


def accuracy_at(model: nn.Module, positives: torch.Tensor, negatives: torch.Tensor, sigma: float,
                generator: torch.Generator) -> float:
    """Fraction classified correctly (logit > 0 for positives) at noise level ``sigma``."""
    x = torch.cat([positives, negatives]).float()
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    with torch.no_grad():
        logits = model(x + sigma * torch.randn(x.shape, generator=generator), torch.full((len(x),), sigma))
    return float(np.mean((logits.numpy() > 0) == y))
