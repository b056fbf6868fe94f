"""Kernel Inception Distance (Binkowski et al. 2018) on any features.

With the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3`` and subsets X (m), Y (n), the
unbiased squared MMD is

    MMD^2 = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(n(n-1)) - 2 sum_{i,j} k(x_i,y_j)/(mn).

KID is its mean over ``n_subsets`` random subset pairs of size ``subset_size`` (without
replacement inside a subset), reported with the standard deviation over subsets.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3) -> np.ndarray:
    """``k(x, y) = (x.y / D + 1)^degree`` for all rows of ``x`` against all rows of ``y``."""
    return (x @ y.T / x.shape[1] + 1.0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased squared MMD between two ``(m, D)``, ``(n, D)`` samples (m, n >= 2)."""
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x, degree), polynomial_kernel(y, y, degree), polynomial_kernel(x, y, degree)
    term_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(term_x + term_y - 2 * kxy.mean())


def kernel_inception_distance(features1: np.ndarray, features2: np.ndarray, n_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """``(mean, std)`` of the unbiased MMD^2 over random subsets (size capped by both set sizes)."""
    features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    size = min(subset_size, features1.shape[0], features2.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 features in each set")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(features1[rng.choice(features1.shape[0], size, replace=False)],
                            features2[rng.choice(features2.shape[0], size, replace=False)])
              for _ in range(n_subsets)]
    return float(np.mean(values)), float(np.std(values))
