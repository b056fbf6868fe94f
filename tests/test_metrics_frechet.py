"""Frechet distance: analytic oracles, symmetry, self-distance, agreement with scipy's sqrtm."""

import numpy as np
import pytest
import scipy.linalg

from ambient_omni.metrics.frechet import (feature_statistics, frechet_distance, frechet_distance_features,
                                          trace_sqrt_product)


def test_one_dimensional_gaussians_match_closed_form():
    # FD(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == \
        pytest.approx(9.0 + 1.0)


def test_diagonal_covariances_match_closed_form():
    a, b = np.array([1.0, 2.0, 0.5]), np.array([4.0, 0.25, 0.5])
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, -1.0])
    expected = 2.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)


def test_trace_sqrt_matches_scipy_for_random_psd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = x @ x.T, y @ y.T
    expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-8)


def test_rank_deficient_covariances_are_handled():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(5, 20))  # 5 points in 20-d: covariance of rank 4
    value = frechet_distance_features(feats, feats)
    assert value == pytest.approx(0.0, abs=1e-6)


def test_self_distance_zero_and_symmetric():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 8)), rng.normal(0.5, 1.5, size=(300, 8))
    assert frechet_distance_features(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_features(a, b) == pytest.approx(frechet_distance_features(b, a), rel=1e-10)
    assert frechet_distance_features(a, b) > 1.0


def test_statistics_are_unbiased_covariance():
    feats = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = feature_statistics(feats)
    assert np.allclose(mu, [2.0, 4.0])
    assert np.allclose(sigma, np.cov(feats.T))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
