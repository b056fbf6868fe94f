"""Closed-form denoisers for Gaussian data: the analytic oracle of the ambient loss.

For ``x_0 ~ N(mu, Sigma)`` in R^d and ``x_t = x_0 + sigma eps``, ``(x_0, x_t)`` is jointly Gaussian
and the optimal denoiser is affine:

    E[x_0 | x_t] = mu + Sigma (Sigma + sigma^2 I)^{-1} (x_t - mu) = A x_t + c,
    A = Sigma (Sigma + sigma^2 I)^{-1},   c = (I - A) mu,
    Cov[x_0 | x_t] = Sigma - A Sigma.

If the data are only seen through noisy observations ``y = x_0 + sigma_n z`` and ``y`` is
treated as clean, the learned denoiser is the posterior of the NOISY distribution
``N(mu, Sigma + sigma_n^2 I)`` instead: :func:`noisy_posterior_affine`.
"""

from __future__ import annotations

import torch


def _identity_like(cov: torch.Tensor) -> torch.Tensor:
    return torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)


def posterior_affine(sigma: float, mu: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, c)`` with ``E[x_0 | x_t] = A x_t + c`` for ``x_0 ~ N(mu, cov)``, noise std ``sigma``.

    ``A = cov (cov + sigma^2 I)^{-1}`` (computed as a solve with the symmetric ``cov + sigma^2 I``).
    """
    m = cov + sigma**2 * _identity_like(cov)
    a = torch.linalg.solve(m, cov).mT  # (m^{-1} cov)^T = cov m^{-1} since both are symmetric
    return a, mu - a @ mu


def posterior_mean(x_t: torch.Tensor, sigma: float, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``E[x_0 | x_t] = mu + cov (cov + sigma^2 I)^{-1} (x_t - mu)`` for rows ``x_t`` of shape ``(..., d)``."""
    a, c = posterior_affine(sigma, mu, cov)
    return x_t @ a.mT + c


def posterior_cov(sigma: float, cov: torch.Tensor) -> torch.Tensor:
    """``Cov[x_0 | x_t] = cov - cov (cov + sigma^2 I)^{-1} cov`` (independent of ``x_t``)."""
    a, _ = posterior_affine(sigma, torch.zeros(cov.shape[-1], dtype=cov.dtype), cov)
    return cov - a @ cov


def noisy_posterior_affine(
    sigma: float, mu: torch.Tensor, cov: torch.Tensor, sigma_n: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, c)`` of ``E[y | y + sigma eps]`` for ``y = x_0 + sigma_n z``, i.e. ``y ~ N(mu, cov + sigma_n^2 I)``."""
    return posterior_affine(sigma, mu, cov + sigma_n**2 * _identity_like(cov))


def noisy_posterior_mean(
    x_t: torch.Tensor, sigma: float, mu: torch.Tensor, cov: torch.Tensor, sigma_n: float
) -> torch.Tensor:
    """What a denoiser trained on noisy data treated as clean learns: ``E[y | x_t = y + sigma eps]``."""
    a, c = noisy_posterior_affine(sigma, mu, cov, sigma_n)
    return x_t @ a.mT + c
