"""Exact and numerical TV distances: the Gaussian formula is checked against quadrature."""

import numpy as np
import pytest

from ambient_omni.theory.tv import (
    discrete_tv,
    gaussian_kernel_1d,
    gaussian_shift_tv,
    mixture_density_1d,
    mixture_density_2d,
    tv_from_densities,
)


@pytest.mark.parametrize(("distance", "sigma"), [(1.0, 0.1), (1.0, 1.0), (0.3, 2.0), (5.0, 1.5)])
def test_gaussian_shift_tv_matches_quadrature(distance: float, sigma: float) -> None:
    y = np.linspace(-10 * sigma, distance + 10 * sigma, 20001)
    numeric = tv_from_densities(gaussian_kernel_1d(y, sigma), gaussian_kernel_1d(y - distance, sigma), y[1] - y[0])
    assert gaussian_shift_tv(distance, sigma) == pytest.approx(numeric, abs=1e-6)


def test_gaussian_shift_tv_large_sigma_asymptote() -> None:
    sigma = 1e4
    assert gaussian_shift_tv(1.0, sigma) * sigma * np.sqrt(2 * np.pi) == pytest.approx(1.0, rel=1e-6)
    assert gaussian_shift_tv(0.0, 1.0) == 0.0


def test_mixture_densities_integrate_to_one() -> None:
    rng = np.random.default_rng(0)
    atoms = rng.uniform(0, 1, 700)  # more atoms than one chunk
    y = np.linspace(-3, 4, 7001)
    assert mixture_density_1d(y, atoms, np.full(700, 1 / 700), 0.3).sum() * (y[1] - y[0]) == pytest.approx(1.0, abs=1e-6)
    axis = np.linspace(-3, 4, 201)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    dens = mixture_density_2d(pts, rng.uniform(0, 1, (40, 2)), np.full(40, 1 / 40), 0.4)
    assert dens.sum() * (axis[1] - axis[0]) ** 2 == pytest.approx(1.0, abs=1e-4)


def test_discrete_tv() -> None:
    assert discrete_tv([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]) == pytest.approx(0.5)
    assert discrete_tv([1.0], [1.0]) == 0.0
