"""Theorem 4.1 / 4.2 and the bias-variance bounds: analytic limits, formulas, input errors."""

import numpy as np
import pytest

from ambient_omni.errors import AmbientError
from ambient_omni.theory.bounds import (
    accuracy_to_tv,
    clean_only_error_bound,
    contraction_bound,
    contraction_bound_sharp,
    kde_bound,
    kde_expected_tv_bound,
    kde_tv_bound,
    kde_tv_bound_rate,
    mixed_error_bound,
)
from ambient_omni.theory.tv import gaussian_shift_tv

SIGMAS = np.geomspace(1e-3, 1e4, 60)


@pytest.mark.parametrize("diameter", [0.1, 1.0, 7.0])
def test_point_masses_obey_and_approach_contraction_bound(diameter: float) -> None:
    true = gaussian_shift_tv(diameter, SIGMAS)  # d_TV(delta_0, delta_D) = 1 before noise
    bound = contraction_bound(SIGMAS, 1.0, diameter)
    assert np.all(true <= bound + 1e-15)
    assert np.allclose(contraction_bound_sharp(SIGMAS, 1.0, diameter), true)  # the sharp bound is attained
    ratio = true[-1] / bound[-1]  # sigma = 1e4 * D-ish: the Pinsker loss factor
    assert ratio == pytest.approx(np.sqrt(2 / np.pi), rel=1e-6)
    assert np.all(np.diff(true / bound)[SIGMAS[1:] > diameter] >= -1e-12)  # ratio rises towards sqrt(2/pi)


def test_contraction_scales_with_tv0_and_never_exceeds_it() -> None:
    assert np.allclose(contraction_bound(SIGMAS, 0.3, 1.0), 0.3 * contraction_bound(SIGMAS, 1.0, 1.0))
    assert np.all(contraction_bound(SIGMAS, 0.3, 1.0) <= 0.3)
    assert np.all(contraction_bound_sharp(SIGMAS, 0.3, 1.0) <= contraction_bound(SIGMAS, 0.3, 1.0) + 1e-15)


def test_kde_rate_formula() -> None:
    sigma, n, lam, delta = 2.0, 400, 5.0, 0.1
    expected = 1 / n + 1 / (sigma**2 * n) + np.sqrt((np.log(n) + np.log(lam) + np.log(2 / delta)) / (sigma**2 * n))
    assert kde_tv_bound_rate(sigma, n, lam, delta) == pytest.approx(expected)
    assert kde_tv_bound_rate(sigma, n, 0.5, delta, constant=3.0) == pytest.approx(
        3 * (1 / n + 1 / (sigma**2 * n) + np.sqrt((np.log(n) + np.log(2 / delta)) / (sigma**2 * n)))
    )
    assert kde_tv_bound_rate(1e-3, 10) == 1.0


def test_explicit_kde_bound_shape() -> None:
    e = kde_expected_tv_bound(SIGMAS, 1)
    assert e[-1] * SIGMAS[-1] == pytest.approx(1 / (2 * np.sqrt(2 * np.pi)), rel=1e-3)  # large-sigma constant
    assert kde_expected_tv_bound(0.5, 400) == pytest.approx(kde_expected_tv_bound(0.5, 1) / 20)
    b = kde_tv_bound(SIGMAS, 1000)
    assert np.all(b <= 1) and np.all(np.diff(b) <= 1e-15)  # non-increasing in sigma
    assert np.all(kde_tv_bound(SIGMAS, 10_000) <= b)


def test_bias_variance_bounds() -> None:
    sig = np.array([0.1, 1.0, 10.0])
    bias = contraction_bound(sig, 0.4, 1.0)
    n1, n2 = 100, 900
    expected = np.minimum(1, 0.9 * bias + kde_tv_bound(sig, 1000))
    assert np.allclose(mixed_error_bound(sig, n1, n2, bias, kind="explicit"), expected)
    assert np.allclose(clean_only_error_bound(sig, n1, kind="paper", lipschitz=2.0), kde_tv_bound_rate(sig, n1, 2.0))
    with pytest.raises(AmbientError, match="unknown KDE bound"):
        kde_bound(1.0, 10, kind="magic")


def test_accuracy_to_tv_and_input_errors() -> None:
    assert np.allclose(accuracy_to_tv([0.4, 0.5, 0.75, 1.0]), [0.0, 0.0, 0.5, 1.0])
    with pytest.raises(AmbientError):
        accuracy_to_tv(1.2)
    with pytest.raises(AmbientError, match="sigma"):
        contraction_bound(0.0, 0.5, 1.0)
    with pytest.raises(AmbientError, match="total variation"):
        contraction_bound(1.0, 1.5, 1.0)
    with pytest.raises(AmbientError, match="delta"):
        kde_tv_bound(1.0, 10, delta=1.5)
