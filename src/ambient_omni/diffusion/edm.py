"""EDM preconditioning, loss weight and noise-level helpers (Karras et al. 2022, Table 1).

The denoiser is ``D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))``
with ``sigma_d`` the data standard deviation and

    c_skip  = sigma_d^2 / (sigma^2 + sigma_d^2)
    c_out   = sigma * sigma_d / sqrt(sigma^2 + sigma_d^2)
    c_in    = 1 / sqrt(sigma^2 + sigma_d^2)
    c_noise = ln(sigma) / 4

so that the backbone ``F`` sees unit-variance inputs and has a unit-variance target.
The loss weight ``lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2`` equals
``1 / c_out^2`` and makes the effective training target of ``F`` unit-weighted.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ambient_omni.errors import AmbientError

SigmaLike = float | torch.Tensor


def sample_column(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` per-sample values reshaped to ``(B, 1, ..., 1)`` with ``x.ndim`` dimensions, so they scale
    sample ``i`` of ``x`` only, whatever ``x``'s shape: ``(B, C, H, W)`` images, ``(B, D)`` vectors..."""
    if x.ndim < 1 or values.shape != (x.shape[0],):
        raise ValueError(f"per-sample values must have shape ({x.shape[0] if x.ndim else '?'},) to match "
                         f"a batch of shape {tuple(x.shape)}, got {tuple(values.shape)}")
    return values.reshape(-1, *([1] * (x.ndim - 1)))


def sigma_column(sigma: SigmaLike, x: torch.Tensor) -> torch.Tensor:
    """Return ``sigma`` as a float32 ``(B, 1, ..., 1)`` tensor (``x.ndim`` dimensions: ``(B, 1, 1, 1)`` for
    images) on ``x``'s device (scalar broadcast)."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(s.shape)}")
    return sample_column(s, x)


def edm_coefficients(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """Return ``(c_skip, c_out, c_in, c_noise)`` for noise levels ``sigma`` (any shape), see module doc."""
    sd2 = sigma_data**2
    norm = (sigma**2 + sd2).sqrt()
    return sd2 / (sigma**2 + sd2), sigma * sigma_data / norm, 1.0 / norm, sigma.log() / 4


class EDMPrecond(nn.Module):
    """Wrap a backbone ``F(x_in, c_noise, labels)`` into the x0-predicting denoiser ``D(x; sigma)``."""

    def __init__(self, backbone: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        if sigma_data <= 0:
            raise AmbientError(f"sigma_data must be positive, got {sigma_data}")
        self.backbone = backbone
        self.sigma_data = float(sigma_data)

    def forward(self, x: torch.Tensor, sigma: SigmaLike, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise, labels)``; ``sigma`` scalar or ``(B,)``; ``x`` of any
        shape ``(B, ...)`` the backbone takes (the coefficients scale each sample, ``c_noise`` is ``(B,)``)."""
        s = sigma_column(sigma, x)
        c_skip, c_out, c_in, c_noise = edm_coefficients(s, self.sigma_data)
        x32 = x.to(torch.float32)
        f = self.backbone(x32 * c_in, c_noise.reshape(-1), labels)
        return c_skip * x32 + c_out * f.to(torch.float32)

    @staticmethod
    def round_sigma(sigma: SigmaLike) -> torch.Tensor:
        """Noise levels are continuous here: returns ``sigma`` as a tensor, unchanged."""
        return torch.as_tensor(sigma)


def edm_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """EDM loss weight ``lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2``."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_lognormal_sigma(
    n: int,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``n`` training noise levels ``sigma = exp(p_mean + p_std * z)``, ``z ~ N(0, 1)``."""
    z = torch.randn(n, generator=generator, device=device)
    return (p_mean + p_std * z).exp()


def karras_sigmas(
    steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """Karras schedule ``sigma_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``.

    Returns ``steps + 1`` float64 values, decreasing from ``sigma_max`` to ``sigma_min``, then ``0``.
    """
    if steps < 1:
        raise AmbientError(f"steps must be >= 1, got {steps}")
    if not 0 < sigma_min <= sigma_max:
        raise AmbientError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    i = torch.arange(steps, dtype=torch.float64)
    frac = i / max(steps - 1, 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + frac * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def denoising_loss(
    net: nn.Module,
    images: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Plain EDM loss per sample: ``lambda(sigma) * mean_pixels (D(y + sigma n; sigma) - y)^2``, shape ``(B,)``
    for ``images`` of any shape ``(B, ...)``.

    ``net`` must be an :class:`EDMPrecond` (its ``sigma_data`` sets the weight).
    """
    s = sample_column(sigma, images)
    denoised = net(images + s * noise, sigma, labels)
    per_sample = (denoised - images).square().flatten(1).mean(1)
    return edm_weight(sigma, net.sigma_data) * per_sample


def validation_sigmas(count: int = 8, sigma_min: float = 0.01, sigma_max: float = 20.0) -> torch.Tensor:
    """``count`` log-spaced noise levels for a fixed validation loss (float32)."""
    return torch.logspace(math.log10(sigma_min), math.log10(sigma_max), count)
