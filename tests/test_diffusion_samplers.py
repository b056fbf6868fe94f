"""EDM samplers: Gaussian oracle, step counts, determinism, batch-size independence, guidance."""

import math

import pytest
import torch

from ambient_omni.diffusion.samplers import PerImageGenerator, edm_sampler, sample_images
from ambient_omni.errors import AmbientError

MU = torch.tensor([0.5, -1.0, 2.0])
VAR = torch.tensor([0.04, 1.0, 0.25])


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Exact E[x0 | x] for x0 ~ N(MU, diag VAR): MU + VAR / (VAR + sigma^2) (x - MU); x is (B, 3, 1, 1)."""
    mu, var = MU.view(1, 3, 1, 1), VAR.view(1, 3, 1, 1)
    s2 = sigma.view(-1, 1, 1, 1) ** 2
    return mu + var / (var + s2) * (x - mu)


class CountingNet:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        return gaussian_denoiser(x, sigma, labels)


@pytest.mark.parametrize("solver,steps,kwargs", [("heun", 80, {}), ("euler", 400, {}),
                                                 ("heun", 80, {"s_churn": 40.0, "s_min": 0.05, "s_max": 50.0})])
def test_gaussian_oracle_moments(solver: str, steps: int, kwargs: dict) -> None:
    n = 20000
    latents = torch.randn(n, 3, 1, 1, generator=torch.Generator().manual_seed(1))
    x = edm_sampler(gaussian_denoiser, latents, steps=steps, solver=solver,
                    generator=torch.Generator().manual_seed(2), **kwargs).view(n, 3)
    # sampling error of the mean is sqrt(var / n) <= 0.007; of the variance about var sqrt(2 / n)
    assert torch.allclose(x.mean(0), MU, atol=0.03)
    assert torch.allclose(x.var(0), VAR, rtol=0.06)


def _variance_error(solver: str, steps: int) -> float:
    """Relative error of the final variance of a deterministic 1-d run (exact: VAR)."""
    x = edm_sampler(gaussian_denoiser, torch.ones(1, 3, 1, 1), steps=steps, solver=solver).view(3)
    exact = (80 - MU) * VAR.sqrt() / (VAR + 80**2).sqrt()  # ODE: (x - mu) scales as sqrt(var + sigma^2)
    return float(((x - MU) / exact).square()[1] - 1)


@pytest.mark.parametrize("solver,order", [("heun", 2), ("euler", 1)])
def test_convergence_order(solver: str, order: int) -> None:
    """Halving the step size divides the discretisation error by about 2^order."""
    ratio = _variance_error(solver, 40) / _variance_error(solver, 80)
    assert 2**order * 0.7 < ratio < 2**order * 1.3


def test_wrong_model_gives_wrong_moments() -> None:
    """The oracle test can fail: a denoiser for a different variance yields a different variance."""
    def wrong(x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return gaussian_denoiser(x, sigma * 1.5)

    x = edm_sampler(wrong, torch.randn(5000, 3, 1, 1, generator=torch.Generator().manual_seed(1))).view(-1, 3)
    assert not torch.allclose(x.var(0), VAR, rtol=0.06)


def test_network_evaluation_counts() -> None:
    latents = torch.randn(2, 3, 1, 1)
    for solver, expected in (("heun", 35), ("euler", 18)):
        net = CountingNet()
        edm_sampler(net, latents, steps=18, solver=solver)
        assert net.calls == expected
    with pytest.raises(AmbientError):
        edm_sampler(CountingNet(), latents, solver="rk4")


def test_classifier_free_guidance_formula() -> None:
    def net(x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # conditional output 1 + label, unconditional (label -1) output 0
        return (labels.float() + 1).clamp(min=0).view(-1, 1, 1, 1) * torch.ones_like(x)

    latents = torch.zeros(2, 1, 2, 2)
    labels = torch.tensor([0, 2])
    out = edm_sampler(net, latents, labels, steps=4, guidance=2.5)
    # D is constant in x, so the ODE ends exactly at D = 0 + 2.5 (c - 0)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([2.5, 7.5]), atol=1e-5)
    with pytest.raises(AmbientError):
        edm_sampler(net, latents, None, guidance=2.0)


def test_per_image_generator_matches_single_seed() -> None:
    g = PerImageGenerator([7, 8])
    draws = g.randn((2, 3))
    assert torch.equal(draws[0], torch.randn((2, 3), generator=torch.Generator().manual_seed(7)))
    assert torch.equal(draws[1], torch.randn((2, 3), generator=torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("kwargs", [{}, {"s_churn": 5.0}])
def test_sample_images_independent_of_batch_size(kwargs: dict) -> None:
    seeds = [3, 1, 4, 1]
    a = sample_images(gaussian_denoiser, 4, seeds, (3, 1, 1), batch_size=1, steps=6, progress=False, **kwargs)
    b = sample_images(gaussian_denoiser, 4, seeds, (3, 1, 1), batch_size=4, steps=6, progress=False, **kwargs)
    assert a.shape == (4, 3, 1, 1)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(a[1], a[3])  # same seed, same image
    assert not torch.allclose(a[0], a[1])
    c = sample_images(gaussian_denoiser, 4, seeds, (3, 1, 1), batch_size=3, steps=6, progress=False, **kwargs)
    assert torch.allclose(a, c, atol=1e-6)


def test_sample_images_clip_and_validation() -> None:
    out = sample_images(gaussian_denoiser, 3, None, (3, 1, 1), steps=4, progress=False)
    assert out.abs().max() <= 1 and out.dtype == torch.float32
    with pytest.raises(AmbientError):
        sample_images(gaussian_denoiser, 3, [1, 2], (3, 1, 1), progress=False)


def test_churn_noise_changes_samples_deterministically() -> None:
    latents = torch.randn(4, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    kw = dict(steps=8, s_churn=20.0, s_max=math.inf)
    a = edm_sampler(gaussian_denoiser, latents, generator=torch.Generator().manual_seed(5), **kw)
    b = edm_sampler(gaussian_denoiser, latents, generator=torch.Generator().manual_seed(5), **kw)
    c = edm_sampler(gaussian_denoiser, latents, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_bf16_runs_the_network_in_bf16_and_stays_close(monkeypatch: pytest.MonkeyPatch) -> None:
    from ambient_omni.diffusion.edm import EDMPrecond
    from ambient_omni.networks.unet import UNet

    monkeypatch.setenv("AMBIENT_CPU_BF16", "1")
    torch.manual_seed(0)
    net = EDMPrecond(UNet(in_channels=1, out_channels=1, model_channels=8, channel_mult=(1, 2), num_blocks=1)).eval()
    seen: list[torch.dtype] = []
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    latents = PerImageGenerator(range(4)).randn((1, 8, 8))
    exact = edm_sampler(net, latents, steps=6)
    assert set(seen) == {torch.float32}
    seen.clear()
    fast = edm_sampler(net, latents, steps=6, bf16=True)
    assert set(seen) == {torch.bfloat16} and fast.dtype == torch.float32
    assert not torch.equal(fast, exact)
    assert (fast - exact).abs().mean() < 0.05 * exact.abs().mean()
