"""KID: the vectorised unbiased MMD equals a brute-force double sum; it separates distributions."""

import numpy as np
import pytest

from ambient_omni.metrics.kid import kernel_inception_distance, mmd2_unbiased


def _brute_mmd2(x, y):
    k = lambda a, b: (a @ b / x.shape[1] + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, size=(5, 3))
    assert mmd2_unbiased(x, y) == pytest.approx(_brute_mmd2(x, y), rel=1e-10)


def test_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(400, 16)), rng.normal(size=(400, 16)), rng.normal(0.5, size=(400, 16))
    same, same_std = kernel_inception_distance(a, b, n_subsets=20, subset_size=200)
    diff, _ = kernel_inception_distance(a, c, n_subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert diff > 10 * max(abs(same), same_std)


def test_deterministic_given_seed():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    assert kernel_inception_distance(a, b, 5, 20, seed=3) == kernel_inception_distance(a, b, 5, 20, seed=3)
