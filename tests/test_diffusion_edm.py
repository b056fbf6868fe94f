"""EDM preconditioning, loss weight, sigma density and Karras schedule against hand-computed values."""

import math

import pytest
import torch
from torch import nn

from ambient_omni.diffusion.edm import (
    EDMPrecond,
    denoising_loss,
    edm_coefficients,
    edm_weight,
    karras_sigmas,
    sample_lognormal_sigma,
)
from ambient_omni.errors import AmbientError


class Recorder(nn.Module):
    """Backbone F that records its inputs and returns a constant 1."""

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        self.x_in, self.c_noise, self.labels = x_in, c_noise, labels
        return torch.ones_like(x_in)


def test_coefficients_hand_computed() -> None:
    # sigma = 0.5 = sigma_data: c_skip = 1/2, c_out = 0.25/sqrt(0.5), c_in = 1/sqrt(0.5), c_noise = ln(0.5)/4
    c_skip, c_out, c_in, c_noise = edm_coefficients(torch.tensor(0.5), 0.5)
    assert c_skip.item() == pytest.approx(0.5)
    assert c_out.item() == pytest.approx(0.25 / math.sqrt(0.5))
    assert c_in.item() == pytest.approx(1 / math.sqrt(0.5))
    assert c_noise.item() == pytest.approx(math.log(0.5) / 4)


def test_precond_combines_backbone_output() -> None:
    backbone = Recorder()
    net = EDMPrecond(backbone, sigma_data=0.5)
    x = torch.full((2, 1, 3, 3), 2.0)
    sigma = torch.tensor([1.0, 2.0])
    out = net(x, sigma, torch.tensor([3, -1]))
    for b, s in enumerate([1.0, 2.0]):
        c_skip, c_out, c_in = 0.25 / (s**2 + 0.25), s * 0.5 / math.sqrt(s**2 + 0.25), 1 / math.sqrt(s**2 + 0.25)
        assert out[b].flatten()[0].item() == pytest.approx(c_skip * 2 + c_out * 1, rel=1e-6)
        assert backbone.x_in[b].flatten()[0].item() == pytest.approx(2 * c_in, rel=1e-6)
        assert backbone.c_noise[b].item() == pytest.approx(math.log(s) / 4, rel=1e-6)
    assert backbone.labels.tolist() == [3, -1]


def test_scalar_sigma_broadcasts_and_bad_shape_fails() -> None:
    net = EDMPrecond(Recorder())
    x = torch.randn(3, 2, 4, 5)
    assert torch.allclose(net(x, 0.7), net(x, torch.full((3,), 0.7)))
    with pytest.raises(ValueError):
        net(x, torch.ones(2))


def test_identity_at_small_sigma() -> None:
    net = EDMPrecond(Recorder())
    x = torch.randn(4, 1, 5, 5)
    assert torch.allclose(net(x, 1e-6), x, atol=1e-5)


def test_weight_is_inverse_c_out_squared() -> None:
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0])
    _, c_out, _, _ = edm_coefficients(sigma, 0.5)
    assert torch.allclose(edm_weight(sigma, 0.5), 1 / c_out**2, rtol=1e-5)
    assert edm_weight(torch.tensor(1.0), 0.5).item() == pytest.approx(1.25 / 0.25)


def test_lognormal_moments_and_determinism() -> None:
    s = sample_lognormal_sigma(200_000, -1.2, 1.2, generator=torch.Generator().manual_seed(0))
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.01)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.01)
    again = sample_lognormal_sigma(200_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, again)


def test_karras_schedule() -> None:
    s = karras_sigmas(18)
    assert s.shape == (19,)
    assert s[0].item() == pytest.approx(80.0) and s[17].item() == pytest.approx(0.002) and s[18] == 0
    assert bool((s[1:] < s[:-1]).all())
    # rho = 1 is a linear schedule
    assert torch.allclose(karras_sigmas(3, 1.0, 3.0, rho=1.0), torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64))
    with pytest.raises(AmbientError):
        karras_sigmas(0)


def test_denoising_loss_zero_for_perfect_denoiser() -> None:
    class Oracle(nn.Module):
        sigma_data = 0.5

        def forward(self, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
            return self.clean

    net = Oracle()
    images = torch.randn(3, 1, 4, 4)
    net.clean = images
    loss = denoising_loss(net, images, torch.tensor([0.1, 1.0, 10.0]), torch.randn_like(images))
    assert loss.shape == (3,) and torch.allclose(loss, torch.zeros(3))
    net.clean = images + 1  # error of 1 per pixel -> loss = lambda(sigma)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    assert torch.allclose(denoising_loss(net, images, sigma, torch.randn_like(images)), edm_weight(sigma))


class LastDimBackbone(nn.Module):
    """``F = Linear(x) + c_noise`` acting on the last dimension only: the same per sample for ``(B, D)`` and
    ``(B, 1, 1, D)`` inputs, so both layouts must give the same denoiser output."""

    def __init__(self, dim: int = 5) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.linear = nn.Linear(dim, dim)

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.linear(x_in) + c_noise.reshape(-1, *([1] * (x_in.ndim - 1)))


def test_vectors_b_by_d_get_one_sigma_per_sample() -> None:
    net = EDMPrecond(LastDimBackbone())
    x, sigma = torch.randn(3, 5, generator=torch.Generator().manual_seed(1)), torch.tensor([0.1, 1.0, 10.0])
    out = net(x, sigma)
    assert out.shape == (3, 5)
    torch.testing.assert_close(out, net(x.reshape(3, 1, 1, 5), sigma).reshape(3, 5))
    for i in range(3):  # sample i depends on its own sigma only
        torch.testing.assert_close(out[i], net(x[i : i + 1], sigma[i : i + 1])[0])
    noise = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
    loss = denoising_loss(net, x, sigma, noise)
    assert loss.shape == (3,)
    torch.testing.assert_close(loss, denoising_loss(net, x[:, None, None], sigma, noise[:, None, None]))
