"""The numerical checks: every bound holds on the examples over grids of sigma and n."""

import numpy as np
import pytest

from ambient_omni.theory.checks import (
    check_bias_variance_1d,
    check_contraction_1d,
    check_contraction_2d,
    check_kde_1d,
    check_kde_2d,
    example_densities,
    example_mixtures,
    first_win,
    point_mass,
)

SIGMAS = [0.03, 1.0]


@pytest.fixture(scope="module")
def densities() -> dict:
    return example_densities()


def test_examples_are_densities_on_unit_interval(densities: dict) -> None:
    for measure in densities.values():
        assert measure.weights.sum() == pytest.approx(1.0)
        assert measure.atoms.min() >= 0 and measure.atoms.max() <= 1
    assert densities["triangle"].lipschitz == pytest.approx(4.0, rel=1e-3)
    samples = densities["triangle"].sample(4000, np.random.default_rng(0))
    assert samples.mean() == pytest.approx(0.5, abs=0.02) and samples.min() >= 0 and samples.max() <= 1


def test_contraction_1d_holds_and_point_masses_are_exact(densities: dict) -> None:
    for p, q in [("triangle", "uniform"), ("bimodal", "bimodal_blurred")]:
        r = check_contraction_1d(densities[p], densities[q], SIGMAS)
        assert np.all(r["true"] <= r["sharp"] + 1e-6) and np.all(r["sharp"] <= r["bound"] + 1e-12)
        assert r["true"][0] <= r["tv0"] + 1e-6
    masses = check_contraction_1d(point_mass(0.0), point_mass(1.0), [1.0, 100.0])
    assert np.allclose(masses["true"], masses["sharp"])
    assert masses["true"][-1] / masses["bound"][-1] == pytest.approx(np.sqrt(2 / np.pi), rel=1e-4)


def test_contraction_2d_mixtures_hold() -> None:
    mix = example_mixtures()
    for name in ("q_weights", "q_shrunk"):
        r = check_contraction_2d(mix["p"], mix[name], [0.1, 1.0])
        assert np.all(r["true"] <= r["sharp"] + 1e-4)
    reweighted = check_contraction_2d(mix["p"], mix["q_weights"], [0.1])
    assert float(reweighted["tv0"]) == pytest.approx(0.3, abs=0.01)  # well separated: TV ~ TV of the weights


def test_kde_bounds_hold_1d(densities: dict) -> None:
    r = check_kde_1d(densities["bimodal"], SIGMAS, [10, 300], reps=2, seed=1)
    assert np.all(r["max"] <= r["density_aware"] + 1e-9)
    assert np.all(r["density_aware"] <= r["explicit"] + 1e-9)  # the closed form is the worst case
    assert np.all(r["max"] <= r["paper"])  # holds here with the chosen constant C = 1
    assert np.all(r["mean"][1] < r["mean"][0])  # more samples, closer


def test_kde_bound_holds_2d() -> None:
    r = check_kde_2d(example_mixtures()["p"], [0.3, 1.0], [10, 100], reps=1, seed=2)
    assert np.all(r["max"] <= r["density_aware"] + 1e-9)


def test_bias_variance_bounds_hold(densities: dict) -> None:
    r = check_bias_variance_1d(densities["bimodal"], densities["bimodal_blurred"], 20, 200, SIGMAS, reps=2, seed=3)
    assert np.all(r["true_clean"] <= r["bound_clean"]) and np.all(r["true_mixed"] <= r["bound_mixed_sharp"])
    assert np.all(r["bound_mixed_sharp"] <= r["bound_mixed"] + 1e-12)
    assert np.all(r["true_bias"] <= 200 / 220 * r["tv0"] + 1e-6)


def test_first_win() -> None:
    s = np.array([1.0, 2.0, 3.0, 4.0])
    assert first_win(s, np.array([1, 1, 1, 1.0]), np.array([0.5, 2, 0.5, 0.5])) == 3.0
    assert first_win(s, np.ones(4), np.zeros(4)) == 1.0
    assert first_win(s, np.zeros(4), np.ones(4)) == float("inf")
