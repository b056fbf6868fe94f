"""Tests for the closed-form Gaussian posteriors."""

from __future__ import annotations

import pytest
import torch

from ambient_omni.diffusion.gaussian import (
    ambient_target_cov,
    ambient_variance_ratio,
    noisy_posterior_affine,
    noisy_posterior_mean,
    posterior_affine,
    posterior_cov,
    posterior_mean,
)

CHOL = torch.tensor([[1.0, 0, 0], [0.6, 0.5, 0], [-0.3, 0.2, 0.4]], dtype=torch.float64)
COV = CHOL @ CHOL.T
MU = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)


def test_diagonal_case_is_shrinkage_per_coordinate() -> None:
    lam = torch.tensor([2.0, 0.5], dtype=torch.float64)
    mu = torch.tensor([1.0, -1.0], dtype=torch.float64)
    x = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    expected = mu + lam / (lam + 0.25) * (x - mu)  # sigma = 0.5
    torch.testing.assert_close(posterior_mean(x, 0.5, mu, torch.diag(lam)), expected)


def test_orthogonality_principle() -> None:
    """The error x0 - (A x_t + c) is uncorrelated with x_t: Cov(x0, x_t) = A Cov(x_t), and unbiased."""
    sigma = 0.8
    a, c = posterior_affine(sigma, MU, COV)
    torch.testing.assert_close(COV, a @ (COV + sigma**2 * torch.eye(3, dtype=torch.float64)))
    torch.testing.assert_close(a @ MU + c, MU)
    torch.testing.assert_close(a, a.T)  # Sigma (Sigma + s^2 I)^{-1} is symmetric


def test_limits_and_posterior_cov() -> None:
    x = torch.tensor([[0.7, 0.1, -2.0]], dtype=torch.float64)
    torch.testing.assert_close(posterior_mean(x, 1e-6, MU, COV), x, atol=1e-9, rtol=0)
    torch.testing.assert_close(posterior_mean(x, 1e6, MU, COV), MU[None], atol=1e-9, rtol=0)
    pc = posterior_cov(0.8, COV)
    assert torch.linalg.eigvalsh(pc).min() > 0
    assert torch.linalg.eigvalsh(COV - pc).min() > 0  # observing x_t reduces uncertainty
    # Monte-Carlo check of the conditional covariance through the residuals of the posterior mean.
    gen = torch.Generator().manual_seed(0)
    x0 = MU + torch.randn(200_000, 3, generator=gen, dtype=torch.float64) @ CHOL.T
    xt = x0 + 0.8 * torch.randn(200_000, 3, generator=gen, dtype=torch.float64)
    resid = x0 - posterior_mean(xt, 0.8, MU, COV)
    torch.testing.assert_close(resid.T @ resid / 200_000, pc, atol=5e-3, rtol=0)  # se ~ 1e-3


def test_noisy_posterior_is_posterior_of_inflated_covariance() -> None:
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    inflated = COV + 0.25 * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(noisy_posterior_mean(x, 1.2, MU, COV, 0.5), posterior_mean(x, 1.2, MU, inflated))
    a_noisy, _ = noisy_posterior_affine(1.2, MU, COV, 0.5)
    a_clean, _ = posterior_affine(1.2, MU, COV)
    assert (a_noisy - a_clean).abs().max() > 0.05  # the two differ visibly at these levels


def test_ambient_target_cov_matches_monte_carlo() -> None:
    """T = (x_tn - (1 - a) x_t) / a scatters around E[x_0 | x_t] with the closed-form covariance."""
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.3, -0.2], dtype=torch.float64)
    cov = torch.tensor([[0.25, 0.1], [0.1, 0.16]], dtype=torch.float64)
    sigma_t, sigma_tn, n = 1.5, 1.0, 400_000
    x0 = mu + torch.randn(n, 2, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(cov).mT
    x_tn = x0 + sigma_tn * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    x_t = x_tn + (sigma_t**2 - sigma_tn**2) ** 0.5 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    a = (sigma_t**2 - sigma_tn**2) / sigma_t**2
    resid = (x_tn - (1 - a) * x_t) / a - posterior_mean(x_t, sigma_t, mu, cov)
    assert resid.mean(0).abs().max() < 0.02  # E[T | x_t] = E[x_0 | x_t]
    emp = resid.T @ resid / n
    torch.testing.assert_close(emp, ambient_target_cov(sigma_t, sigma_tn, cov), rtol=0.02, atol=0.01)


def test_ambient_variance_ratio_closed_form() -> None:
    v = 0.25
    cov = v * torch.eye(3, dtype=torch.float64)
    assert ambient_variance_ratio(2.0, 0.0, cov) == pytest.approx(1.0)
    for sigma_t, sigma_tn in ((1.2, 1.0), (3.0, 2.6), (10.0, 2.6)):
        expected = (1 + sigma_tn**2 / v) * sigma_t**2 / (sigma_t**2 - sigma_tn**2)
        assert ambient_variance_ratio(sigma_t, sigma_tn, cov) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        ambient_target_cov(1.0, 1.0, cov)
