"""NoiseClassifier: logits for tiny and non-square inputs, sigma conditioning, c_in scaling, training signal."""

import pytest
import torch

from ambient_omni.networks.classifier import NoiseClassifier
from ambient_omni.networks.unet import UNetEncoder


def _tiny(**kw: object) -> NoiseClassifier:
    return NoiseClassifier(1, model_channels=8, channel_mult=(1, 2), num_blocks=1, **kw)


@pytest.mark.parametrize("size", [(4, 4), (8, 8), (28, 28), (28, 20), (5, 3)])
def test_logit_shape(size: tuple[int, int]) -> None:
    net = _tiny()
    assert net(torch.randn(3, 1, *size), torch.tensor([0.1, 1.0, 10.0])).shape == (3,)
    assert net(torch.randn(2, 1, *size), 0.5).shape == (2,)


def test_uses_encoder_and_sigma() -> None:
    net = _tiny()
    assert isinstance(net.encoder, UNetEncoder)
    x = torch.randn(2, 1, 8, 8)
    assert not torch.allclose(net(x, 0.1), net(x, 5.0))


def test_input_scaled_by_c_in() -> None:
    """The encoder sees c_in x = x / sqrt(sigma^2 + sigma_data^2), like the denoiser's backbone."""
    net = _tiny(sigma_data=0.5)
    seen = {}
    net.encoder.conv_in.register_forward_hook(lambda m, i, o: seen.__setitem__("x_in", i[0]))
    x = torch.randn(2, 1, 8, 8)
    net(x, torch.tensor([1.0, 2.0]))
    assert torch.allclose(seen["x_in"][0], x[0] / 1.25**0.5, atol=1e-6)
    assert torch.allclose(seen["x_in"][1], x[1] / 4.25**0.5, atol=1e-6)


def test_learns_to_separate_noise_free_classes() -> None:
    """A few Adam steps separate bright from dark 4x4 crops (the logit carries a learnable signal)."""
    gen = torch.Generator().manual_seed(0)
    net = _tiny()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    pos = torch.rand(32, 1, 4, 4, generator=gen) * 0.5 + 0.5
    neg = -pos
    x, y = torch.cat([pos, neg]), torch.cat([torch.ones(32), torch.zeros(32)])
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x, 0.05), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = ((net(x, 0.05) > 0).float() == y).float().mean().item()
    assert acc > 0.95
