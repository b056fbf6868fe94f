"""Tests for the ambient loss: exact EDM reduction, fixed noise, buffer checks, Gaussian oracle."""

from __future__ import annotations

import math

import pytest
import torch

from ambient_omni.diffusion.ambient_loss import (
    AmbientLoss,
    ambient_fraction,
    ambient_target,
    buffer_factor,
    fixed_noise,
    variance_weight,
)
from ambient_omni.diffusion.edm import EDMPrecond, denoising_loss, edm_weight
from ambient_omni.diffusion.gaussian import noisy_posterior_affine, posterior_affine
from ambient_omni.errors import AmbientError


class TinyBackbone(torch.nn.Module):
    """A small conv backbone ``F(x, c_noise, labels)`` for EDMPrecond."""

    def __init__(self, channels: int = 2) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        with torch.no_grad():
            for p in self.conv.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.conv(x) + c_noise.reshape(-1, 1, 1, 1)


def make_batch(sigma_t: list[float], sigma_tn: list[float], shape=(2, 4, 4), seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    b = len(sigma_t)
    return {
        "image": torch.rand((b, *shape), generator=gen) * 2 - 1,
        "label": torch.full((b,), -1, dtype=torch.int64),
        "id": torch.arange(10, 10 + b, dtype=torch.int64),
        "sigma_t": torch.tensor(sigma_t),
        "sigma_tn": torch.tensor(sigma_tn),
    }


def test_buffer_factor_values() -> None:
    assert buffer_factor(4.0) == pytest.approx(2 / math.sqrt(3))  # 1.1547
    assert buffer_factor(2.0) == pytest.approx(math.sqrt(2))
    assert buffer_factor(None) == 1.0 and buffer_factor(math.inf) == 1.0
    with pytest.raises(AmbientError, match="buffer_s"):
        buffer_factor(1.0)


def test_fixed_noise_is_per_id_and_batch_independent() -> None:
    ids = torch.tensor([3, 7, 11, 7])
    z = fixed_noise(ids, (2, 3, 3), seed=5)
    assert z.shape == (4, 2, 3, 3)
    torch.testing.assert_close(z[1], z[3])  # same id -> same noise
    assert not torch.allclose(z[0], z[1])
    alone = fixed_noise(torch.tensor([11]), (2, 3, 3), seed=5)
    torch.testing.assert_close(alone[0], z[2])  # independent of batch composition
    assert not torch.allclose(fixed_noise(ids, (2, 3, 3), seed=6), z)  # seed matters


def test_fixed_noise_leaves_global_rng_alone_and_is_standard_normal() -> None:
    state = torch.get_rng_state()
    z = fixed_noise(torch.arange(4000), (1, 5, 5), seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01  # 1e5 draws: se 3e-3


def test_sigma_tn_zero_is_exactly_the_edm_loss() -> None:
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    batch = make_batch([0.02, 0.3, 1.7, 40.0], [0.0] * 4)
    loss = AmbientLoss(noise_seed=3)(net, batch, generator=torch.Generator().manual_seed(9))
    noise = torch.randn(batch["image"].shape, generator=torch.Generator().manual_seed(9))
    edm = denoising_loss(net, batch["image"], batch["sigma_t"], noise, batch["label"])
    assert loss.shape == (4,)
    assert torch.equal(loss, edm)


def test_loss_matches_the_written_formula_and_target_form() -> None:
    """Recompute PAPER 2.1 step by step, and check loss = lambda * mean (x0_hat - T)^2."""
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    st, stn = torch.tensor([0.9, 2.0, 0.5]), torch.tensor([0.7, 1.0, 0.0])
    batch = make_batch(st.tolist(), stn.tolist())
    stats: dict[str, torch.Tensor] = {}
    loss = AmbientLoss(noise_seed=4)(net, batch, generator=torch.Generator().manual_seed(1), stats=stats)

    y = batch["image"]
    z = fixed_noise(batch["id"], (2, 4, 4), seed=4)
    eps = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    col = lambda v: v.reshape(-1, 1, 1, 1)  # noqa: E731
    x_tn = y + col(stn) * z
    x_t = x_tn + col((st**2 - stn**2).sqrt()) * eps
    x0_hat = net(x_t, st, batch["label"])
    a = (st**2 - stn**2) / st**2
    x_tn_hat = (1 - col(a)) * x_t + col(a) * x0_hat
    lam = (st**2 + 0.25) / (st * 0.5) ** 2
    expected = lam * (st**4 / (st**2 - stn**2) ** 2) * (x_tn_hat - x_tn).square().mean((1, 2, 3))
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)

    target = ambient_target(x_t, x_tn, st, stn)
    via_target = edm_weight(st) * (x0_hat - target).square().mean((1, 2, 3))
    torch.testing.assert_close(loss, via_target, rtol=1e-4, atol=1e-5)
    assert stats["w_amb_max"].item() == pytest.approx((1 / a**2).max().item(), rel=1e-5)
    assert stats["ambient_frac"].item() == pytest.approx(2 / 3)


def test_ablation_switches() -> None:
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    st, stn = torch.tensor([0.9, 2.0]), torch.tensor([0.7, 1.0])
    batch = make_batch(st.tolist(), stn.tolist())
    run = lambda **kw: AmbientLoss(**kw)(net, batch, generator=torch.Generator().manual_seed(2))  # noqa: E731
    full, no_w, no_lam = run(), run(ambient_weight=False), run(edm_weighting=False)
    a = ambient_fraction(st, stn)
    torch.testing.assert_close(no_w, full * a**2)
    torch.testing.assert_close(no_lam, full / edm_weight(st))


def test_variance_weight_scales_ambient_samples_only() -> None:
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    st, stn = torch.tensor([0.9, 2.0, 1.3]), torch.tensor([0.7, 1.0, 0.0])
    batch = make_batch(st.tolist(), stn.tolist())
    run = lambda **kw: AmbientLoss(**kw)(net, batch, generator=torch.Generator().manual_seed(2))  # noqa: E731
    full, weighted = run(), run(variance_weight=True)
    expected = ambient_fraction(st, stn) / (1 + stn**2 / 0.25)
    torch.testing.assert_close(weighted, full * expected)
    assert weighted[2].item() == full[2].item()  # clean sample: weight exactly 1


def test_variance_weight_equalizes_the_optimum_on_isotropic_gaussian_data() -> None:
    """x0 ~ N(0, v I) with v = sigma_data^2 seen only as x_tn = x0 + sigma_tn z. With the exact
    clean posterior mean as the denoiser, the expected ambient loss is r = (1 + sigma_tn^2/v)/a
    times the clean EDM optimum lambda * v sigma_t^2 / (v + sigma_t^2); the variance weight
    brings it back to 1x. Monte Carlo over 16 pixels x 20000 samples: 1% tolerance."""
    v, n, sigma_tn = 0.25, 20_000, 1.0

    def posterior_mean(x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return x * (v / (v + sigma.reshape(-1, 1, 1, 1) ** 2))

    gen = torch.Generator().manual_seed(3)
    for sigma_t in (1.3, 3.0):
        batch = {"image": torch.randn((n, 1, 4, 4), generator=gen) * math.sqrt(v),
                 "label": torch.full((n,), -1), "id": torch.arange(n),
                 "sigma_t": torch.full((n,), sigma_t), "sigma_tn": torch.full((n,), sigma_tn)}
        clean_optimum = edm_weight(torch.tensor(sigma_t)).item() * v * sigma_t**2 / (v + sigma_t**2)
        plain = AmbientLoss(buffer_s=None)(posterior_mean, batch, generator=gen).mean().item()
        weighted = AmbientLoss(buffer_s=None, variance_weight=True)(posterior_mean, batch, generator=gen).mean().item()
        w = variance_weight(torch.tensor(sigma_t), torch.tensor(sigma_tn), 0.5).item()
        assert plain == pytest.approx(clean_optimum / w, rel=0.01)
        assert weighted == pytest.approx(clean_optimum, rel=0.01)
        assert 1 / w > 5  # the effect is large, not a rounding detail


def test_x0_target_is_the_edm_loss_on_the_image_inside_the_window() -> None:
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    st, stn = torch.tensor([0.9, 2.0, 1.3]), torch.tensor([0.7, 1.0, 0.0])
    batch = make_batch(st.tolist(), stn.tolist())
    stats: dict[str, torch.Tensor] = {}
    x0 = AmbientLoss(target="x0")(net, batch, generator=torch.Generator().manual_seed(2), stats=stats)
    as_clean = AmbientLoss()(net, {**batch, "sigma_tn": torch.zeros(3)}, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(x0, as_clean, rtol=0, atol=0)
    ambient = AmbientLoss()(net, batch, generator=torch.Generator().manual_seed(2))
    assert x0[2].item() == ambient[2].item() and not torch.allclose(x0[:2], ambient[:2])  # clean rows: the same loss
    assert stats["ambient_frac"].item() == pytest.approx(2 / 3) and stats["w_amb_max"].item() == 1.0
    with pytest.raises(AmbientError, match="violate"):  # the annotation's window still holds
        AmbientLoss(target="x0")(net, make_batch([1.1], [1.0]))
    with pytest.raises(AmbientError, match="loss target must be one of ambient, x0"):
        AmbientLoss(target="clean")


def test_both_targets_regress_to_the_same_posterior_mean_on_gaussian_data() -> None:
    """y ~ N(0, v I) observed at sigma_tn = 1. Among denoisers ``c * E[y | x_t]`` both targets' expected loss
    is a parabola in ``c`` with its vertex at 1 (the shared minimizer, module doc); at the optimum the ambient
    loss is r = 1 / variance_weight times the x0 one. Monte Carlo over 16 pixels x 20000 samples."""
    v, n, sigma_tn = 0.25, 20_000, 1.0

    def scaled_posterior(c: float):
        return lambda x, sigma, labels: c * x * (v / (v + sigma.reshape(-1, 1, 1, 1) ** 2))

    data = torch.randn((n, 1, 4, 4), generator=torch.Generator().manual_seed(3)) * math.sqrt(v)
    for sigma_t in (1.3, 3.0):
        batch = {"image": data, "label": torch.full((n,), -1), "id": torch.arange(n),
                 "sigma_t": torch.full((n,), sigma_t), "sigma_tn": torch.full((n,), sigma_tn)}
        optimum = {}
        for target in ("ambient", "x0"):
            loss = AmbientLoss(buffer_s=None, target=target)
            lo, mid, hi = (loss(scaled_posterior(c), batch, generator=torch.Generator().manual_seed(4)).mean().item()
                           for c in (0.8, 1.0, 1.2))
            vertex = 1 + 0.2 * (lo - hi) / (2 * (lo - 2 * mid + hi))
            assert vertex == pytest.approx(1.0, abs=0.03), (target, sigma_t)
            optimum[target] = mid
        r = 1 / variance_weight(torch.tensor(sigma_t), torch.tensor(sigma_tn), 0.5).item()
        assert optimum["ambient"] / optimum["x0"] == pytest.approx(r, rel=0.02)
        assert r > 5


def test_buffer_and_order_violations_raise_with_ids() -> None:
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    b = buffer_factor(4.0)
    ok = make_batch([1.0 * b * 1.0001], [1.0])  # just inside the buffer
    AmbientLoss()(net, ok)
    inside = make_batch([0.5, 1.1], [0.0, 1.0])  # 1.1 < b * 1.0
    with pytest.raises(AmbientError, match=r"id 11: sigma_t=1\.1"):
        AmbientLoss()(net, inside)
    AmbientLoss(buffer_s=None)(net, inside)  # no buffer: only sigma_t > sigma_tn needed
    below = make_batch([0.8], [1.0])
    with pytest.raises(AmbientError, match="violate"):
        AmbientLoss(buffer_s=None)(net, below)


def _affine_fit(loss_fn: AmbientLoss, images: torch.Tensor, ids: torch.Tensor, sigma_t: float, sigma_tn: float):
    """Exact minimizer of the (quadratic) loss over affine denoisers x0_hat = A x_t + c: one Newton step."""
    n, d = images.shape
    theta = torch.zeros(d * d + d, dtype=torch.float64, requires_grad=True)

    def net(x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a, c = theta[: d * d].reshape(d, d), theta[d * d :]
        return (x.reshape(n, d) @ a.T + c).reshape(x.shape)

    batch = {
        "image": images.reshape(n, d, 1, 1),
        "label": torch.zeros(n, dtype=torch.int64),
        "id": ids,
        "sigma_t": torch.full((n,), sigma_t, dtype=torch.float64),
        "sigma_tn": torch.full((n,), sigma_tn, dtype=torch.float64),
    }
    loss = loss_fn(net, batch, generator=torch.Generator().manual_seed(123)).mean()
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
    eye = torch.eye(theta.numel(), dtype=theta.dtype)
    (hess,) = torch.autograd.grad(grad, theta, grad_outputs=eye, is_grads_batched=True)
    sol = -torch.linalg.solve(hess, grad.detach())
    return sol[: d * d].reshape(d, d), sol[d * d :]


def _standard_errors(cond_cov: torch.Tensor, design_cov: torch.Tensor, mu: torch.Tensor, n: int):
    """OLS standard errors of (A, c) for iid rows.

    ``cond_cov``: covariance of the residual (target given x_t); ``design_cov``: covariance of x_t.
    """
    inv = torch.linalg.inv(design_cov)
    se_a = (torch.diag(cond_cov)[:, None] * torch.diag(inv)[None, :] / n).sqrt()
    se_c = (torch.diag(cond_cov) * (1 + mu @ inv @ mu) / n).sqrt()
    return se_a, se_c


def test_gaussian_oracle_ambient_learns_clean_posterior_naive_does_not() -> None:
    """x0 ~ N(mu, Sigma) in d=3 (non-diagonal), only seen as x_tn = x0 + sigma_tn z_i (z_i fixed).

    The ambient loss's minimizer over affine denoisers must equal the CLEAN posterior
    A = Sigma (Sigma + sigma_t^2 I)^{-1}; regressing on the noisy data as if clean must give
    the noisy-data posterior instead. With one eps per sample the rows are iid and jointly
    Gaussian, so the fit is OLS with residual covariance Cov[T | x_t]; the tolerance is 5 OLS
    standard errors (n = 40000 puts the naive answer 25-40 standard errors away).
    """
    d, n, sigma_tn, seed = 3, 40_000, 0.5, 7
    chol = torch.tensor([[1.0, 0, 0], [0.6, 0.5, 0], [-0.3, 0.2, 0.4]], dtype=torch.float64)
    cov, mu = chol @ chol.T, torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x0 = mu + torch.randn(n, d, generator=gen, dtype=torch.float64) @ chol.T
    ids = torch.arange(n)
    y_noisy = x0 + sigma_tn * fixed_noise(ids, (d, 1, 1), seed).reshape(n, d).double()
    eye = torch.eye(d, dtype=torch.float64)
    noisy_cov = cov + sigma_tn**2 * eye
    for sigma_t in (0.7, 1.2, 2.5):
        a_clean, c_clean = posterior_affine(sigma_t, mu, cov)
        a_naive, c_naive = noisy_posterior_affine(sigma_t, mu, cov, sigma_tn)
        # Ambient: the loss adds the fixed noise itself; it never sees x0 otherwise.
        a_fit, c_fit = _affine_fit(AmbientLoss(noise_seed=seed), x0, ids, sigma_t, sigma_tn)
        tau2, frac = sigma_t**2 - sigma_tn**2, 1 - sigma_tn**2 / sigma_t**2
        cond = (noisy_cov - noisy_cov @ torch.linalg.solve(noisy_cov + tau2 * eye, noisy_cov)) / frac**2
        se_a, se_c = _standard_errors(cond, cov + sigma_t**2 * eye, mu, n)
        assert ((a_fit - a_clean).abs() / se_a).max() < 5, (sigma_t, a_fit, a_clean)
        assert ((c_fit - c_clean).abs() / se_c).max() < 5, (sigma_t, c_fit, c_clean)
        # Naive: the noisy observations are the "clean" images (sigma_tn = 0: plain EDM loss).
        a_nv, c_nv = _affine_fit(AmbientLoss(), y_noisy, ids, sigma_t, 0.0)
        cond_nv = noisy_cov - noisy_cov @ torch.linalg.solve(noisy_cov + sigma_t**2 * eye, noisy_cov)
        se_a_nv, _ = _standard_errors(cond_nv, noisy_cov + sigma_t**2 * eye, mu, n)
        assert ((a_nv - a_naive).abs() / se_a_nv).max() < 5
        assert ((a_nv - a_clean).abs() / se_a).max() > 15


def test_float32_rounding_at_the_buffer_edge_is_accepted() -> None:
    """The sampler draws sigma_t > b*sigma_tn in float64; batches carry float32 copies."""
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    for stn in (0.7, 1.3, 0.013):
        st = buffer_factor(4.0) * stn * (1 + 1e-15)
        AmbientLoss()(net, make_batch([st], [stn]))  # must not raise
    far = make_batch([buffer_factor(4.0) * 0.7 * (1 - 1e-3)], [0.7])
    with pytest.raises(AmbientError):
        AmbientLoss()(net, far)


class LastDimBackbone(torch.nn.Module):
    """``F = Linear(x) + c_noise`` on the last dimension: the same per sample for ``(B, 6)`` and ``(B, 1, 1, 6)``."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.linear = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.linear(x) + c_noise.reshape(-1, *([1] * (x.ndim - 1)))


def test_vectors_b_by_d_match_the_image_layout_per_sample() -> None:
    """``(B, D)`` batches: each sigma scales its own sample (it used to broadcast ``(B,1,1,1)`` into ``(B,1,B,D)``)."""
    net = EDMPrecond(LastDimBackbone())
    batch = make_batch([0.5, 2.0, 9.0], [0.0, 0.4, 1.5], shape=(6,))
    loss_fn = AmbientLoss(noise_seed=3)
    loss = loss_fn(net, batch, generator=torch.Generator().manual_seed(9))
    assert loss.shape == (3,)
    as_images = {**batch, "image": batch["image"].reshape(3, 1, 1, 6)}
    torch.testing.assert_close(loss, loss_fn(net, as_images, generator=torch.Generator().manual_seed(9)))
    one = {k: v[1:2] for k, v in batch.items()}
    eps = torch.randn((3, 6), generator=torch.Generator().manual_seed(9))
    x_tn = one["image"] + 0.4 * fixed_noise(one["id"], (6,), 3)
    x_t = x_tn + math.sqrt(2.0**2 - 0.4**2) * eps[1:2]
    a = (4.0 - 0.16) / 4.0
    x_tn_hat = (1 - a) * x_t + a * net(x_t, one["sigma_t"])
    expected = edm_weight(torch.tensor(2.0)) / a**2 * (x_tn_hat - x_tn).square().mean()
    torch.testing.assert_close(loss[1], expected.reshape(()), rtol=1e-5, atol=1e-6)
    x_t2, x_tn2 = torch.randn(3, 6), torch.randn(3, 6)
    st, stn = torch.tensor([0.5, 2.0, 9.0]), torch.tensor([0.0, 0.4, 1.5])
    target = ambient_target(x_t2, x_tn2, st, stn)
    assert target.shape == (3, 6)
    torch.testing.assert_close(target, ambient_target(x_t2[:, None, None], x_tn2[:, None, None], st, stn).reshape(3, 6))


def test_images_that_already_carry_their_noise_are_not_noised_twice() -> None:
    net = EDMPrecond(TinyBackbone(), sigma_data=0.5)
    batch = make_batch([0.9, 2.0, 5.0, 0.3], [0.5, 1.0, 0.0, 0.2])
    clean_loss = AmbientLoss(noise_seed=3)(net, batch, generator=torch.Generator().manual_seed(9))
    # the observation a user would hold: y + sigma_tn z with the same per-sample noise the loss would add
    z = fixed_noise(batch["id"], (2, 4, 4), 3)
    observed = {**batch, "image": batch["image"] + batch["sigma_tn"].reshape(-1, 1, 1, 1) * z}
    given = AmbientLoss(noise_seed=3, images_carry_noise=True)(net, observed, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(given, clean_loss)
    twice = AmbientLoss(noise_seed=3)(net, observed, generator=torch.Generator().manual_seed(9))
    assert not torch.allclose(twice[:2], clean_loss[:2])  # the default adds sigma_tn z again
    assert torch.equal(twice[2], given[2])  # sigma_tn = 0: nothing is added either way
