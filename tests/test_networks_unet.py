"""U-Net backbone and encoder: shapes (odd, non-square, 1/3 channels), conditioning, shared encoder."""

import pytest
import torch

from ambient_omni.errors import AmbientError
from ambient_omni.networks.unet import UNet, UNetEncoder


def _tiny(**kw: object) -> dict:
    return dict(model_channels=8, channel_mult=(1, 2, 2), num_blocks=1, **kw)


def _randomize_zero_inits(net: torch.nn.Module) -> None:
    """Zero-initialised output layers would make every output 0; give them small random values."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("size", [(28, 28), (28, 20), (32, 48), (13, 7), (64, 64), (5, 3)])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape(size: tuple[int, int], channels: int) -> None:
    net = UNet(channels, channels, **_tiny())
    x = torch.randn(2, channels, *size)
    out = net(x, torch.zeros(2))
    assert out.shape == x.shape


def test_attention_and_out_channels() -> None:
    net = UNet(3, 6, **_tiny(attn_levels=(2,)))
    assert net(torch.randn(2, 3, 12, 10), torch.zeros(2)).shape == (2, 6, 12, 10)
    with pytest.raises(AmbientError):
        UNet(1, 1, attn_levels=(3,))
    with pytest.raises(AmbientError):
        UNet(1, 1, channel_mult=())


def test_output_depends_on_noise_level_and_input() -> None:
    net = UNet(1, 1, **_tiny())
    _randomize_zero_inits(net)
    x = torch.randn(2, 1, 12, 12)
    a = net(x, torch.zeros(2))
    assert not torch.allclose(a, net(x, torch.ones(2)))
    assert not torch.allclose(a, net(x + 1, torch.zeros(2)))


def test_class_conditioning_and_null_label() -> None:
    net = UNet(1, 1, **_tiny(label_dim=3)).eval()
    _randomize_zero_inits(net)
    x = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1)
    out = net(x, torch.zeros(3), torch.tensor([0, 1, -1]))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0], out[2])
    assert torch.allclose(net(x, torch.zeros(3), None), net(x, torch.zeros(3), torch.full((3,), -1)))
    with pytest.raises(ValueError):
        net(x, torch.zeros(3), torch.tensor([0, 3, 1]))


def test_unconditional_net_ignores_labels() -> None:
    net = UNet(1, 1, **_tiny())
    _randomize_zero_inits(net)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(net(x, torch.zeros(2), torch.tensor([5, 7])), net(x, torch.zeros(2)))


def test_label_dropout_only_in_training() -> None:
    net = UNet(1, 1, **_tiny(label_dim=2, label_dropout=1.0))
    _randomize_zero_inits(net)
    x = torch.randn(2, 1, 8, 8)
    c = torch.zeros(2)
    with torch.no_grad():
        dropped = net.train()(x, c, torch.tensor([0, 1]))  # p = 1: every label becomes the null class
        assert torch.allclose(dropped, net.eval()(x, c, torch.tensor([-1, -1])), atol=1e-6)
        assert not torch.allclose(dropped, net.eval()(x, c, torch.tensor([0, 1])))


def test_label_dropout_rate() -> None:
    emb = UNet(1, 1, **_tiny(label_dim=2, label_dropout=0.3)).encoder.embed.train()
    torch.manual_seed(0)
    idx = emb._label_index(torch.zeros(20000, dtype=torch.long), 20000, torch.device("cpu"))
    assert (idx == 2).float().mean().item() == pytest.approx(0.3, abs=0.02)


def test_encoder_is_shared_component() -> None:
    net = UNet(1, 1, **_tiny())
    assert isinstance(net.encoder, UNetEncoder)
    enc_keys = {f"encoder.{k}" for k in net.encoder.state_dict()}
    assert enc_keys <= set(net.state_dict())
    standalone = UNetEncoder(1, **_tiny())
    assert set(standalone.state_dict()) == set(net.encoder.state_dict())
    standalone.load_state_dict(net.encoder.state_dict())
    x, c = torch.randn(2, 1, 9, 11), torch.rand(2)
    assert torch.allclose(standalone(x, c), net.encoder(x, c))


@pytest.mark.parametrize("size", [(4, 4), (8, 8), (1, 1), (28, 20)])
def test_encoder_pooled_features(size: tuple[int, int]) -> None:
    enc = UNetEncoder(3, model_channels=8, channel_mult=(1, 2, 4), num_blocks=1)
    out = enc(torch.randn(2, 3, *size), torch.zeros(2))
    assert out.shape == (2, enc.out_dim) and enc.out_dim == 32


def test_backward_reaches_every_parameter() -> None:
    net = UNet(1, 1, **_tiny(label_dim=2, attn_levels=(1,)))
    _randomize_zero_inits(net)
    net(torch.randn(2, 1, 8, 8), torch.zeros(2), torch.tensor([0, -1])).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_init_args_are_json() -> None:
    net = UNet(1, 2, **_tiny())
    assert net.init_args["channel_mult"] == [1, 2, 2] and net.init_args["out_channels"] == 2


def test_blocks_per_level_and_input_skip() -> None:
    net = UNet(1, 1, model_channels=8, channel_mult=(1, 2, 2), num_blocks=[1, 2, 3], input_skip=True)
    assert [len(level) for level in net.encoder.levels] == [1, 2, 3]
    assert [len(level) for level in net.up_levels] == [3, 2, 1]
    # the last decoder level takes h (16, from level 1) + skip_0 (8) + conv_in(x) (8) channels
    assert net.up_levels[-1][0].conv1.in_channels == 32
    x = torch.randn(2, 1, 13, 9)
    assert net(x, torch.zeros(2)).shape == x.shape
    plain = UNet(1, 1, model_channels=8, channel_mult=(1, 2, 2), num_blocks=[1, 2, 3])
    assert plain.up_levels[-1][0].conv1.in_channels == 24
    with pytest.raises(AmbientError, match="num_blocks"):
        UNet(1, 1, channel_mult=(1, 2), num_blocks=[1, 2, 3])
    with pytest.raises(AmbientError, match="num_blocks"):
        UNet(1, 1, channel_mult=(1, 2), num_blocks=[1, 0])


def test_input_skip_is_a_path_from_input_to_output() -> None:
    """Perturbing one input pixel changes that output pixel through conv_in -> last level alone."""
    net = UNet(1, 1, model_channels=8, channel_mult=(1, 2), num_blocks=1, input_skip=True)
    x = torch.zeros(1, 1, 8, 8, requires_grad=True)
    net(x, torch.zeros(1))[0, 0, 4, 4].backward()
    assert x.grad[0, 0, 4, 4] != 0


def test_group_norm_groups_divide_the_channels() -> None:
    from ambient_omni.networks.unet import _groups

    for channels in (1, 3, 8, 32, 96, 128, 144, 160, 200):
        g = _groups(channels)
        assert channels % g == 0 and g <= 32 and (g == 1 or channels // g >= 4)
    assert _groups(144) == 24 and _groups(128) == 32
    UNet(1, 1, model_channels=48, channel_mult=(1, 3), num_blocks=1)  # 144 channels: used to fail


@pytest.mark.parametrize("channels", [0, -8])
def test_non_positive_model_channels_is_an_error_naming_the_option(channels: int) -> None:
    with pytest.raises(AmbientError, match=r"model_channels \(--channels\) must be a positive int"):
        UNet(1, 1, model_channels=channels, channel_mult=(1, 2), num_blocks=1)
    with pytest.raises(AmbientError, match="in_channels must be a positive int"):
        UNetEncoder(0, model_channels=8, channel_mult=(1, 2), num_blocks=1)
