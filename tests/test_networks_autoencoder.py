"""The convolutional VAE (ambient_omni.networks.autoencoder): shapes, config round trip, input checks."""

from __future__ import annotations

import pytest
import torch

from ambient_omni.errors import AmbientError
from ambient_omni.networks.autoencoder import LOG_VAR_RANGE, Autoencoder
from ambient_omni.networks.registry import build_network, network_config, preset_config


def _tiny(**changes: object) -> Autoencoder:
    args = {"in_channels": 1, "latent_channels": 2, "model_channels": 4, "channel_mult": (1, 2), "num_blocks": 1}
    args.update(changes)
    return Autoencoder(**args)


def test_shapes_and_factor() -> None:
    model = _tiny()
    x = torch.randn(3, 1, 12, 8)
    mu, log_var = model.encode(x)
    assert model.factor == 2 and mu.shape == log_var.shape == (3, 2, 6, 4)
    assert model.decode(mu).shape == (3, 1, 12, 8) and model(x).shape == x.shape
    assert model.latent_shape((1, 12, 8)) == (2, 6, 4)
    rgb = _tiny(in_channels=3, channel_mult=(1, 2, 2))
    assert rgb.factor == 4 and rgb(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_the_preset_maps_fashion_mnist_to_4x7x7_and_its_config_rebuilds_it() -> None:
    model = build_network(preset_config("fmnist-ae"), init_seed=0)
    assert model.encode(torch.randn(2, 1, 28, 28))[0].shape == (2, 4, 7, 7)
    again = build_network(network_config(model), init_seed=0)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), again(x))


def test_log_var_is_clamped() -> None:
    model = _tiny()
    with torch.no_grad():
        model.enc_out[-1].bias.fill_(1e4)
        _, log_var = model.encode(torch.randn(1, 1, 4, 4))
    assert float(log_var.max()) == LOG_VAR_RANGE[1]


def test_wrong_inputs_are_errors() -> None:
    model = _tiny()
    with pytest.raises(AmbientError, match="not a multiple of its factor 2"):
        model.encode(torch.randn(1, 1, 5, 4))
    with pytest.raises(AmbientError, match="3 channels, the autoencoder takes 1"):
        model.encode(torch.randn(1, 3, 4, 4))
    with pytest.raises(AmbientError, match=r"\(N, C, H, W\)"):
        model.encode(torch.randn(1, 4, 4))
    with pytest.raises(AmbientError, match=r"decode takes \(N, 2, h, w\)"):
        model.decode(torch.randn(1, 3, 2, 2))
    with pytest.raises(AmbientError, match="must be positive"):
        _tiny(latent_channels=0)
