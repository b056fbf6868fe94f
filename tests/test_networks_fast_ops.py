"""The fast-ops switch and the kernels' pooling and up-sampling: bit for bit PyTorch's results and gradients,
other sizes on PyTorch's own ops, and the U-Net the same function either way."""

import pytest
import torch
import torch.nn.functional as F

from ambient_omni.errors import AmbientError
from ambient_omni.networks.fast_ops import downsample, fast_ops_enabled, set_fast_ops, upsample, using_fast_ops
from ambient_omni.networks.unet import UNet


LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_even_pooling_and_its_gradient_are_pytorchs_bit_for_bit(dtype: torch.dtype,
                                                                layout: torch.memory_format) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 8, 6, generator=gen).to(dtype).contiguous(memory_format=layout).requires_grad_()
    dy = torch.randn(3, 5, 4, 3, generator=gen).to(dtype).contiguous(memory_format=layout)
    y = downsample(x)
    (dx,) = torch.autograd.grad(y, x, dy)
    y_ref = F.avg_pool2d(x, 2, ceil_mode=True)
    (dx_ref,) = torch.autograd.grad(y_ref, x, dy)
    assert y.grad_fn.name() == "_Pool2x2Backward"
    assert torch.equal(y, y_ref) and torch.equal(dx, dx_ref)
    assert y.is_contiguous(memory_format=layout) and dx.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_upsampling_and_its_gradient_are_pytorchs_bit_for_bit(dtype: torch.dtype,
                                                              layout: torch.memory_format) -> None:
    """Also with the gradient a channel slice of a larger tensor, as a concatenation's backward hands it over."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, 3, generator=gen).to(dtype).contiguous(memory_format=layout).requires_grad_()
    wide = torch.randn(3, 9, 8, 6, generator=gen).to(dtype).contiguous(memory_format=layout)
    dy = wide[:, 2:7]
    assert not dy.is_contiguous()
    y = upsample(x, (8, 6))
    (dx,) = torch.autograd.grad(y, x, dy)
    y_ref = F.interpolate(x, size=(8, 6), mode="nearest")
    (dx_ref,) = torch.autograd.grad(y_ref, x, dy)
    assert y.grad_fn.name() == "_Upsample2xBackward"
    assert torch.equal(y, y_ref) and torch.equal(dx, dx_ref)
    odd = upsample(x, (7, 6))  # not exactly 2x: PyTorch's interpolate
    assert torch.equal(odd, F.interpolate(x, size=(7, 6), mode="nearest"))


def test_odd_sizes_and_switched_off_use_pytorchs_op() -> None:
    odd = torch.randn(2, 3, 7, 6, requires_grad=True)
    assert downsample(odd).shape == (2, 3, 4, 3) and downsample(odd).grad_fn.name() != "_Pool2x2Backward"
    with using_fast_ops(False):
        assert downsample(torch.randn(2, 3, 8, 8, requires_grad=True)).grad_fn.name() != "_Pool2x2Backward"
        assert upsample(torch.randn(2, 3, 4, 4, requires_grad=True), (8, 8)).grad_fn.name() != "_Upsample2xBackward"


def test_switch_follows_the_environment_and_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBIENT_FAST_OPS", "off")
    assert not fast_ops_enabled()
    with using_fast_ops(True):
        assert fast_ops_enabled()
    assert not fast_ops_enabled()
    monkeypatch.setenv("AMBIENT_FAST_OPS", "on")
    assert fast_ops_enabled()
    set_fast_ops(False)
    try:
        assert not fast_ops_enabled()
    finally:
        set_fast_ops(None)
    monkeypatch.setenv("AMBIENT_FAST_OPS", "fast")
    with pytest.raises(AmbientError, match="AMBIENT_FAST_OPS must be 'on' or 'off'"):
        fast_ops_enabled()


def test_the_unet_computes_the_same_function_with_and_without_fast_ops() -> None:
    torch.manual_seed(0)
    net = UNet(1, 1, model_channels=8, channel_mult=(1, 2), num_blocks=1).double()
    x, sigma = torch.randn(3, 1, 12, 12, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    results = []
    for fast in (True, False):
        net.zero_grad()
        with using_fast_ops(fast):
            out = net(x, sigma)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    (out_fast, grads_fast), (out_ref, grads_ref) = results
    assert torch.allclose(out_fast, out_ref, atol=1e-12, rtol=0)
    assert all(torch.allclose(a, b, atol=1e-12, rtol=1e-9) for a, b in zip(grads_fast, grads_ref))


def test_the_unet_trains_in_channels_last_only_with_the_fused_norms() -> None:
    from ambient_omni.networks.cpu_kernels import kernels_available
    from ambient_omni.networks.ddpmpp_reference import DDPMppStyleUNet
    from ambient_omni.networks.fast_ops import memory_format_for

    cpu = torch.device("cpu")
    unet = UNet(1, 1, model_channels=8, channel_mult=(1, 2), num_blocks=1)
    expected = torch.channels_last if kernels_available() else torch.contiguous_format
    assert memory_format_for(unet, cpu) == expected
    with using_fast_ops(False):
        assert memory_format_for(unet, cpu) == torch.contiguous_format
    attention = UNet(1, 1, model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_levels=(1,))
    assert memory_format_for(attention, cpu) == torch.contiguous_format  # its attention norm is PyTorch's
    assert memory_format_for(DDPMppStyleUNet(1, 1, model_channels=8), cpu) == torch.contiguous_format


def test_channels_last_unet_computes_the_nchw_function() -> None:
    torch.manual_seed(0)
    net = UNet(1, 1, model_channels=8, channel_mult=(1, 2), num_blocks=1).double()
    x, sigma = torch.randn(3, 1, 12, 12, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    out = net(x, sigma)
    net.to(memory_format=torch.channels_last)
    assert torch.allclose(net(x, sigma), out, atol=1e-12, rtol=0)
