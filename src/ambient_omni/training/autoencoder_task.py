"""The autoencoder task: images of a dataset folder -> the VAE loss, trained by the one training loop.

Global batch ``k`` is ``B`` images drawn uniformly with replacement, a pure function of ``(seed, k)`` (so resume
is exact). Per-sample loss, with ``(mu, log_var) = encode(x)``, ``z = mu + exp(log_var / 2) eps`` and ``d`` the
number of latent values per image:

    l(x) = mean_pixels (decode(z) - x)^2  +  beta * (1 / d) sum_latent (mu^2 + exp(log_var) - 1 - log_var) / 2

the squared error of the reconstruction plus ``beta`` times the KL divergence ``KL(q(z | x) || N(0, I))`` per
latent value. A small ``beta`` (default 1e-4) keeps the latents close to deterministic codes whose scale is
then fixed when a dataset is encoded (per-channel standard deviation; :mod:`ambient_omni.latents`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.networks.registry import build_network, network_config
from ambient_omni.seeding import derive_seed, generator
from ambient_omni.training.loop import TrainConfig, Trainer

DEFAULT_BETA = 1e-4


def vae_loss(model: nn.Module, x: torch.Tensor, beta: float, gen: torch.Generator) -> torch.Tensor:
    """Per-sample reconstruction error plus ``beta`` KL per latent value (module doc), shape ``(N,)``."""
    mu, log_var = model.encode(x)
    eps = torch.randn(mu.shape, generator=gen, device=gen.device).to(mu.device)
    z = mu + torch.exp(0.5 * log_var) * eps
    recon = (model.decode(z).float() - x.float()).square().flatten(1).mean(1)
    mu, log_var = mu.float(), log_var.float()
    kl = 0.5 * (mu.square() + log_var.exp() - 1 - log_var).flatten(1).mean(1)
    return recon + beta * kl


class AutoencoderTask:
    """Train ``model`` (an :class:`~ambient_omni.networks.autoencoder.Autoencoder`) on ``images``."""

    def __init__(self, model: nn.Module, images: torch.Tensor, batch_size: int, beta: float = DEFAULT_BETA,
                 seed: int = 0, info: dict[str, Any] | None = None) -> None:
        if len(images) == 0:
            raise AmbientError("autoencoder training needs at least one image")
        if not beta >= 0:
            raise AmbientError(f"--beta (the KL weight) must be >= 0, got {beta}")
        model.latent_shape(images.shape[1:])  # wrong channels or a size the factor does not divide: an error now
        self.model, self.images = model, images.float()
        self.batch_size, self.beta, self.seed, self.info = batch_size, float(beta), seed, dict(info or {})

    def batches(self, start_step: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        """This rank's contiguous share of global batches ``start_step, start_step + 1, ...``."""
        share = self.batch_size // world_size
        step = start_step
        while True:
            idx = torch.randint(0, len(self.images), (self.batch_size,), generator=generator(self.seed, "ae-batch", step))
            yield {"image": self.images[idx[rank * share : (rank + 1) * share]]}
            step += 1

    def loss(self, model: nn.Module, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        """Per-sample VAE loss (:func:`vae_loss`)."""
        return vae_loss(model, batch["image"], self.beta, generator)

    def config(self) -> dict[str, Any]:
        """Model-folder config: kind ``autoencoder``, the network, its factor and the training settings."""
        return {"kind": "autoencoder", "network": network_config(self.model), "factor": self.model.factor,
                "autoencoder": {"beta": self.beta, "images": len(self.images), **self.info}}

    def describe(self) -> str:
        """One line for the log."""
        c, h, w = self.images.shape[1:]
        lc, lh, lw = self.model.latent_shape((c, h, w))
        return f"autoencoder: {len(self.images)} images {c}x{h}x{w} -> latents {lc}x{lh}x{lw}, KL weight {self.beta:g}"


def train_autoencoder(network: dict[str, Any], images: torch.Tensor, out: str | os.PathLike, *, beta: float = DEFAULT_BETA,
                      config: TrainConfig | None = None, info: dict[str, Any] | None = None) -> Path:
    """Train the ``kind: autoencoder`` ``network`` on ``images`` into the run folder ``out`` (resuming from its
    latest checkpoint); return the model folder ``out/model`` with the final EMA weights. ``config`` defaults
    to :class:`TrainConfig`'s settings; its seed also seeds the initial weights and the batches."""
    if network.get("kind") != "autoencoder":
        raise AmbientError(f"autoencoder training needs a network config of kind 'autoencoder', got {network.get('kind')!r}")
    config = config or TrainConfig()
    model = build_network(network, init_seed=derive_seed(config.seed, "autoencoder-init"))
    task = AutoencoderTask(model, images, config.batch_size, beta, config.seed, info)
    return Trainer(task, config, out).run()


__all__ = ["DEFAULT_BETA", "AutoencoderTask", "train_autoencoder", "vae_loss"]
