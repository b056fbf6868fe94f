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


def ambient_target_cov(sigma_t: float, sigma_tn: float, cov: torch.Tensor) -> torch.Tensor:
    """``Cov[T | x_t]`` of the ambient regression target ``T = (x_tn - (1 - a) x_t) / a`` (PAPER 2.1).

    With ``x_tn = x_0 + sigma_tn z``, ``x_t = x_tn + sqrt(sigma_t^2 - sigma_tn^2) eps`` and
    ``a = (sigma_t^2 - sigma_tn^2) / sigma_t^2``: ``x_tn ~ N(mu, S)`` with ``S = cov + sigma_tn^2 I`` is
    seen through noise of variance ``sigma_t^2 - sigma_tn^2``, so
    ``Cov[x_tn | x_t] = S - S (S + (sigma_t^2 - sigma_tn^2) I)^{-1} S`` and ``Cov[T | x_t] = Cov[x_tn | x_t] / a^2``.
    ``E[T | x_t] = E[x_0 | x_t]``, so at the optimum the ambient loss (``lambda * ||D - T||^2``) keeps
    ``lambda * tr Cov[T | x_t]`` where the clean EDM loss keeps ``lambda * tr Cov[x_0 | x_t]``
    (:func:`posterior_cov`): the irreducible part of the loss, and the noise of its gradients.
    """
    if not sigma_t > sigma_tn >= 0:
        raise ValueError(f"need sigma_t > sigma_tn >= 0, got {sigma_t}, {sigma_tn}")
    gap = sigma_t**2 - sigma_tn**2
    s = cov + sigma_tn**2 * _identity_like(cov)
    a, _ = posterior_affine(gap**0.5, torch.zeros(cov.shape[-1], dtype=cov.dtype), s)
    return (s - a @ s) / (gap / sigma_t**2) ** 2


def ambient_variance_ratio(sigma_t: float, sigma_tn: float, cov: torch.Tensor) -> float:
    """``tr Cov[T | x_t] / tr Cov[x_0 | x_t]``: how much larger the optimum of the ambient loss is
    than that of the clean EDM loss at the same ``sigma_t`` (1 for ``sigma_tn = 0``). For isotropic
    data of variance ``v`` it is ``(1 + sigma_tn^2 / v) * sigma_t^2 / (sigma_t^2 - sigma_tn^2)``."""
    return float(torch.trace(ambient_target_cov(sigma_t, sigma_tn, cov)) / torch.trace(posterior_cov(sigma_t, cov)))
