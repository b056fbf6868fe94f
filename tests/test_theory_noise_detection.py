"""The ideal noise classifier: its mean P(clean) against a Monte Carlo likelihood-ratio oracle, the crossing
ratio and its inverse."""

import math

import numpy as np
import pytest
from scipy import special, stats

from ambient_omni.theory.noise_detection import effective_pixels, ideal_crossing_ratio, mean_p_clean


def test_no_extra_variance_means_a_coin_flip() -> None:
    assert mean_p_clean(1.0, 50) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(("d", "sigma", "s"), [(20, 0.1, 0.1), (200, 0.3, 0.1), (5, 0.05, 0.2)])
def test_mean_p_clean_matches_a_simulated_likelihood_ratio_test(d: int, sigma: float, s: float) -> None:
    """Draw the d constant pixels of corrupted images (std sqrt(sigma^2 + s^2)), score them with the exact
    Gaussian log-likelihoods of both hypotheses, average the posterior of 'clean'."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, math.hypot(sigma, s), (20_000, d))
    llr = (stats.norm.logpdf(x, scale=sigma) - stats.norm.logpdf(x, scale=math.hypot(sigma, s))).sum(axis=1)
    p = special.expit(llr)
    r = 1 + (s / sigma) ** 2
    assert mean_p_clean(r, d) == pytest.approx(p.mean(), abs=4 * p.std() / math.sqrt(len(p)) + 1e-4)


def test_the_crossing_ratio_solves_m_equals_tau_and_grows_with_the_pixels() -> None:
    ratios = [ideal_crossing_ratio(d, 0.45) for d in (10, 100, 1000)]
    assert ratios == sorted(ratios) and ratios[0] > 1
    r_star = 1 + ratios[1] ** -2  # sigma* / s = 1 / sqrt(r* - 1)
    assert mean_p_clean(r_star, 100) == pytest.approx(0.45, abs=1e-7)
    assert ideal_crossing_ratio(100, 0.40) < ratios[1]  # a lower threshold is crossed earlier


def test_effective_pixels_inverts_the_crossing_ratio() -> None:
    assert effective_pixels(ideal_crossing_ratio(50.0)) == pytest.approx(50.0, rel=1e-5)
    with pytest.raises(ValueError, match="tau"):
        ideal_crossing_ratio(10, 0.5)
    with pytest.raises(ValueError, match="outside"):
        effective_pixels(1000.0)
