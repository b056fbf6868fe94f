"""Noise-conditional binary classifier on the U-Net encoder half (PAPER 2.3, 2.4).

``logit(x, sigma) = w^T mean_hw SiLU(GN(h)) + b`` with ``h = E(c_in(sigma) x, c_noise(sigma))`` the
lowest-level feature map of :class:`~ambient_omni.networks.unet.UNetEncoder`, ``c_in = 1 / sqrt(sigma^2 + sigma_d^2)`` and
``c_noise = ln(sigma) / 4`` exactly as for the denoiser, so noisy inputs have unit variance.
The encoder pools globally, so any input size works, including 4x4 crops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ambient_omni.diffusion.edm import SigmaLike, sigma_column, edm_coefficients
from ambient_omni.networks.unet import UNetEncoder, _groups, _init_args


class NoiseClassifier(nn.Module):
    """``forward(x, sigma) -> (B,)`` logits; ``sigma`` is a scalar or ``(B,)``."""

    def __init__(
        self,
        in_channels: int,
        model_channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_blocks: int | Sequence[int] = 2,
        attn_levels: Sequence[int] = (),
        dropout: float = 0.0,
        emb_dim: int | None = None,
        sigma_data: float = 0.5,
    ) -> None:
        super().__init__()
        self.init_args = _init_args(locals())
        self.sigma_data = float(sigma_data)
        self.encoder = UNetEncoder(
            in_channels, model_channels, channel_mult, num_blocks, attn_levels, dropout, emb_dim=emb_dim
        )
        self.out_norm = nn.GroupNorm(_groups(self.encoder.out_dim), self.encoder.out_dim)
        self.head = nn.Linear(self.encoder.out_dim, 1)

    def forward(self, x: torch.Tensor, sigma: SigmaLike) -> torch.Tensor:
        """Logit that ``x`` (noised to level ``sigma``) comes from the positive class."""
        s = sigma_column(sigma, x)
        _, _, c_in, c_noise = edm_coefficients(s, self.sigma_data)
        emb = self.encoder.embed(c_noise.reshape(-1))
        h, _ = self.encoder.features(x.to(torch.float32) * c_in, emb)
        return self.head(F.silu(self.out_norm(h)).mean(dim=(2, 3))).squeeze(1)
