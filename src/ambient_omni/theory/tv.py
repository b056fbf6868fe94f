"""Exact and numerical total variation distances between noised distributions.

Conventions: ``d_TV(P, Q) = sup_A |P(A) - Q(A)| = (1/2) * integral |p - q|`` (values in [0, 1]).
``p_sigma = p * N(0, sigma^2 I)`` is the distribution of ``x0 + sigma * eps`` (variance-exploding
diffusion at noise level ``sigma``). Densities are evaluated on regular grids and integrated with
the midpoint/rectangle rule; grids are chosen by the caller (see :mod:`ambient_omni.theory.checks`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

_CHUNK = 256


def gaussian_shift_tv(distance: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """Exact ``d_TV(N(a, sigma^2 I), N(b, sigma^2 I))`` for ``|a - b| = distance`` in any dimension.

    The optimal test is the half-space orthogonal to ``b - a``, so the distance is one-dimensional:
    ``2 * Phi(distance / (2 sigma)) - 1 = erf(distance / (2 sqrt(2) sigma))``.
    For large ``sigma`` it behaves like ``distance / (sigma * sqrt(2 pi))``.
    """
    distance = np.asarray(distance, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    return erf(distance / (2.0 * np.sqrt(2.0) * sigma))


def tv_from_densities(p: np.ndarray, q: np.ndarray, cell: float) -> float:
    """``(1/2) * sum |p - q| * cell``: total variation of two densities sampled on the same grid."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum() * cell)


def discrete_tv(weights_p: np.ndarray, weights_q: np.ndarray) -> float:
    """``(1/2) * sum_k |w_p[k] - w_q[k]|`` for two probability vectors on the same atoms."""
    return float(0.5 * np.abs(np.asarray(weights_p, float) - np.asarray(weights_q, float)).sum())


def gaussian_kernel_1d(u: np.ndarray, sigma: float) -> np.ndarray:
    """The N(0, sigma^2) density ``phi_sigma(u) = exp(-u^2 / (2 sigma^2)) / (sigma sqrt(2 pi))``."""
    return np.exp(-0.5 * (u / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))


def mixture_density_1d(y: np.ndarray, atoms: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """``sum_k weights[k] * phi_sigma(y - atoms[k])``, computed in chunks of atoms to bound memory.

    With ``atoms`` = a fine midpoint grid of a density ``p`` on [0, 1] and ``weights = p(atoms) dx``
    this is ``p_sigma(y)`` by quadrature; with ``atoms`` = samples and ``weights = 1/n`` it is the
    Gaussian kernel density estimate (the distribution a diffusion model trained to optimality on
    ``n`` samples produces at level ``sigma``).
    """
    y = np.asarray(y, dtype=float)
    out = np.zeros_like(y)
    for start in range(0, len(atoms), _CHUNK):
        a = atoms[start : start + _CHUNK]
        w = weights[start : start + _CHUNK]
        out += gaussian_kernel_1d(y[:, None] - a[None, :], sigma) @ w
    return out


def mixture_density_2d(
    points: np.ndarray, centers: np.ndarray, weights: np.ndarray, std: float
) -> np.ndarray:
    """Isotropic 2-D Gaussian mixture ``sum_k w_k N(points; centers_k, std^2 I)``; points ``(M, 2)``.

    Centers are processed in chunks so that at most about 2 million pairwise distances are held.
    """
    points = np.asarray(points, dtype=float)
    out = np.zeros(len(points))
    norm = 1.0 / (2.0 * np.pi * std**2)
    chunk = max(1, 2_000_000 // max(1, len(points)))
    for start in range(0, len(centers), chunk):
        c = centers[start : start + chunk]
        w = weights[start : start + chunk]
        d2 = ((points[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        out += (norm * np.exp(-0.5 * d2 / std**2)) @ w
    return out
