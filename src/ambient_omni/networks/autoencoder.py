"""A small convolutional variational autoencoder: images <-> latents for latent diffusion (issue 19).

Layout (``L = len(channel_mult)`` levels, ``c_i = model_channels * channel_mult[i]``, factor ``f = 2^(L-1)``):

    encoder: conv_in -> for each level i: [2x2 average pool if i > 0] -> n ResBlocks (c_i)
             -> GroupNorm, SiLU, conv -> (mu, log_var), each (N, latent_channels, H / f, W / f)
    decoder: conv_in -> for each level i from L-1 down to 0: n ResBlocks (c_i) -> [nearest 2x up if i > 0]
             -> GroupNorm, SiLU, conv_out -> image (N, out_channels, H, W)

A ResBlock here is ``skip(x) + conv(SiLU(GN(conv(SiLU(GN(x))))))`` (no noise embedding). The posterior is
``q(z | x) = N(mu, diag(exp(log_var)))``; training (:class:`~ambient_omni.training.autoencoder_task.AutoencoderTask`)
minimises ``mean (decode(z) - x)^2 + beta KL(q(z | x) || N(0, I)) / dims`` with ``z = mu + exp(log_var / 2) eps``.
Encoding a dataset uses ``mu`` (deterministic). ``H`` and ``W`` must be multiples of ``f``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ambient_omni.errors import AmbientError
from ambient_omni.networks.unet import _groups, _init_args

LOG_VAR_RANGE = (-30.0, 20.0)
"""``log_var`` is clamped to this range, so that ``exp`` can neither vanish nor overflow."""


class _ResBlock(nn.Module):
    """``skip(x) + conv(SiLU(GN(conv(SiLU(GN(x))))))``; ``skip`` is a 1x1 conv when the width changes."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(in_ch), in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(out_ch), out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class Autoencoder(nn.Module):
    """Convolutional VAE (module doc). ``encode`` gives ``(mu, log_var)``, ``decode`` the image."""

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, latent_channels: int = 4,
                 model_channels: int = 32, channel_mult: Sequence[int] = (1, 2, 2), num_blocks: int = 1) -> None:
        super().__init__()
        self.init_args = _init_args(locals())
        if not channel_mult or min(channel_mult) < 1 or num_blocks < 1 or latent_channels < 1 or model_channels < 1:
            raise AmbientError("autoencoder: channel_mult, num_blocks, latent_channels and model_channels must be "
                               f"positive (got {list(channel_mult)}, {num_blocks}, {latent_channels}, {model_channels})")
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels, self.latent_channels = in_channels, out_channels, latent_channels
        self.factor = 2 ** (len(channel_mult) - 1)
        widths = [model_channels * m for m in channel_mult]
        self.enc_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.enc_levels = nn.ModuleList()
        prev = widths[0]
        for w in widths:
            self.enc_levels.append(nn.Sequential(*[_ResBlock(prev if k == 0 else w, w) for k in range(num_blocks)]))
            prev = w
        self.enc_out = nn.Sequential(nn.GroupNorm(_groups(prev), prev), nn.SiLU(), nn.Conv2d(prev, 2 * latent_channels, 3, padding=1))
        self.dec_in = nn.Conv2d(latent_channels, widths[-1], 3, padding=1)
        self.dec_levels = nn.ModuleList()
        prev = widths[-1]
        for w in reversed(widths):
            self.dec_levels.append(nn.Sequential(*[_ResBlock(prev if k == 0 else w, w) for k in range(num_blocks)]))
            prev = w
        self.dec_out = nn.Sequential(nn.GroupNorm(_groups(prev), prev), nn.SiLU(), nn.Conv2d(prev, out_channels, 3, padding=1))

    def latent_shape(self, image_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(C, H, W) -> (latent_channels, H / f, W / f)``; an error unless ``C`` matches and ``f`` divides."""
        c, h, w = (int(v) for v in image_shape)
        if c != self.in_channels:
            raise AmbientError(f"autoencoder: images have {c} channels, the autoencoder takes {self.in_channels}")
        if h % self.factor or w % self.factor:
            raise AmbientError(f"autoencoder: {h} x {w} images are not a multiple of its factor {self.factor}")
        return self.latent_channels, h // self.factor, w // self.factor

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log_var)`` of ``q(z | x)`` for images ``x`` (N, C, H, W) in [-1, 1]."""
        if x.ndim != 4:
            raise AmbientError(f"autoencoder: encode takes (N, C, H, W) images, got shape {tuple(x.shape)}")
        self.latent_shape(x.shape[1:])
        h = self.enc_in(x)
        for i, level in enumerate(self.enc_levels):
            h = level(F.avg_pool2d(h, 2) if i > 0 else h)
        mu, log_var = self.enc_out(h).chunk(2, dim=1)
        return mu, log_var.clamp(*LOG_VAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The image (N, out_channels, f h, f w) of latents ``z`` (N, latent_channels, h, w)."""
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise AmbientError(f"autoencoder: decode takes (N, {self.latent_channels}, h, w) latents, "
                               f"got shape {tuple(z.shape)}")
        h = self.dec_in(z)
        last = len(self.dec_levels) - 1
        for i, level in enumerate(self.dec_levels):
            h = level(h)
            if i < last:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.dec_out(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction ``decode(mu(x))``."""
        return self.decode(self.encode(x)[0])


__all__ = ["LOG_VAR_RANGE", "Autoencoder"]
