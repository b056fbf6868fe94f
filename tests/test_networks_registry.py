"""Registry: build -> config -> build round trip, presets, errors for unknown kinds and options."""

import json

import pytest
import torch

from ambient_omni.diffusion.edm import EDMPrecond
from ambient_omni.errors import AmbientError
from ambient_omni.networks.classifier import NoiseClassifier
from ambient_omni.networks.registry import PRESETS, build_network, network_config, preset_config
from ambient_omni.networks.unet import UNet, UNetEncoder

SMALL = {"in_channels": 1, "model_channels": 8, "channel_mult": [1, 2], "num_blocks": 1}


def _randomize(net: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def _call(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(net, (UNet, UNetEncoder)):
        return net(x, torch.zeros(x.shape[0]))
    return net(x, torch.full((x.shape[0],), 0.7))


@pytest.mark.parametrize("config,cls", [
    ({"kind": "denoiser", "sigma_data": 0.4, "out_channels": 1, "label_dim": 3, **SMALL}, EDMPrecond),
    ({"kind": "unet", "out_channels": 2, **SMALL}, UNet),
    ({"kind": "encoder", **SMALL}, UNetEncoder),
    ({"kind": "classifier", "sigma_data": 0.5, **SMALL}, NoiseClassifier),
])
def test_round_trip(config: dict, cls: type) -> None:
    net = build_network(config)
    assert type(net) is cls
    described = network_config(net)
    assert json.loads(json.dumps(described)) == described
    assert all(described[k] == v for k, v in config.items())
    again = build_network(json.loads(json.dumps(described)))
    assert network_config(again) == described
    assert list(again.state_dict()) == list(net.state_dict())
    _randomize(net)
    again.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 6, 5)
    assert torch.equal(_call(net, x), _call(again, x))


def test_direct_construction_is_described() -> None:
    net = EDMPrecond(UNet(1, 1, model_channels=8, num_blocks=1), sigma_data=0.3)
    config = network_config(net)
    assert config["kind"] == "denoiser" and config["sigma_data"] == 0.3 and config["model_channels"] == 8
    with pytest.raises(AmbientError):
        network_config(torch.nn.Linear(2, 2))


def test_presets_build_with_documented_sizes() -> None:
    counts = {name: sum(p.numel() for p in build_network(cfg).parameters()) for name, cfg in PRESETS.items()}
    assert counts["fmnist-small"] == pytest.approx(0.63e6, rel=0.02)
    assert counts["fmnist-base"] == pytest.approx(1.00e6, rel=0.02)
    assert counts["fmnist-wide"] == pytest.approx(2.52e6, rel=0.02)
    assert counts["fmnist-classifier"] == pytest.approx(0.51e6, rel=0.02)
    cfg = preset_config("fmnist-small", in_channels=3, out_channels=3)
    assert cfg["in_channels"] == 3 and PRESETS["fmnist-small"]["in_channels"] == 1


@pytest.mark.parametrize("config,word", [
    ({"kind": "nope"}, "nope"),
    ({"in_channels": 1}, "kind"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "widht": 3}, "widht"),
    ({"kind": "unet", "in_channels": 1}, "out_channels"),
    ({"kind": "unet", "in_channels": 1, "out_channels": 1, "num_blocks": 0}, "num_blocks"),
])
def test_errors_name_the_problem(config: dict, word: str) -> None:
    with pytest.raises(AmbientError, match=word):
        build_network(config)
    with pytest.raises(AmbientError):
        preset_config("no-such-preset")


def test_init_seed_fixes_the_weights_and_leaves_the_global_rng_alone() -> None:
    config = {"kind": "classifier", **SMALL}
    state = torch.get_rng_state()
    a = build_network(config, init_seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG did not move
    torch.randn(100)
    b, c = build_network(config, init_seed=5), build_network(config, init_seed=6)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[n], pb[n]) for n in pa)
    assert not all(torch.equal(pa[n], pc[n]) for n in pa)
