"""The fused SiLU(GroupNorm(x) * weight + bias): float64 gradients, agreement with PyTorch's ops in every dtype,
thread-count independence, the fallbacks (switch off, other layouts) and bad input."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from ambient_omni.errors import AmbientError
from ambient_omni.networks.fast_ops import using_fast_ops
from ambient_omni.networks.cpu_kernels import kernels_available
from ambient_omni.networks.group_norm_silu import group_norm_silu, reference

AFFINES = ["none", "per-channel", "per-sample"]


def _affine(kind: str, n: int, c: int, dtype: torch.dtype) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(3)
    shape = {"none": None, "per-channel": (c,), "per-sample": (n, c)}[kind]
    if shape is None:
        return None, None
    return (1 + 0.5 * torch.randn(shape, generator=gen)).to(dtype), torch.randn(shape, generator=gen).to(dtype)


@pytest.mark.parametrize("kind", AFFINES)
@pytest.mark.parametrize("shape", [(3, 8, 5, 7), (2, 6, 9)])
def test_float64_gradients_of_the_kernel(kind: str, shape: tuple[int, ...]) -> None:
    if not kernels_available():
        pytest.skip("kernel unavailable")
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    weight, bias = _affine(kind, shape[0], shape[1], torch.float64)
    params = [t.requires_grad_() for t in (weight, bias) if t is not None]
    groups = 2

    def f(x: torch.Tensor, *p: torch.Tensor) -> torch.Tensor:
        return group_norm_silu(x, groups, *(p or (None, None)))

    assert torch.autograd.gradcheck(f, (x, *params))
    assert f(x, *params).grad_fn.name() == "_GroupNormSiLUBackward"  # the kernel, not the reference, was checked
    assert torch.allclose(f(x, *params), reference(x, groups, weight, bias), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", AFFINES)
def test_kernel_matches_float64_truth(dtype: torch.dtype, kind: str) -> None:
    """Forward within one bf16 rounding (float: 1e-5) of the float64 result on the same inputs; gradients
    within the error that PyTorch's own ops make in that dtype (plus a small margin)."""
    if not kernels_available():
        pytest.skip("kernel unavailable")
    gen = torch.Generator().manual_seed(1)
    x = (3 * torch.randn(4, 32, 12, 12, generator=gen) + 1).to(dtype).requires_grad_()
    weight, bias = _affine(kind, 4, 32, dtype)
    dy = torch.randn(4, 32, 12, 12, generator=gen).to(dtype)
    x64 = x.detach().double().requires_grad_()
    truth = reference(x64, 8, *(t.double() if t is not None else None for t in (weight, bias)))
    truth.backward(dy.double())
    y = group_norm_silu(x, 8, weight, bias)
    y.backward(dy)
    tol = 2.0 ** -8 if dtype == torch.bfloat16 else 1e-5
    assert y.dtype == dtype and ((y.double() - truth).abs() <= tol * truth.abs() + 1e-6).all()
    x_ref = x.detach().requires_grad_()
    reference(x_ref, 8, weight, bias).backward(dy)
    ours, theirs = ((g.double() - x64.grad).norm() / x64.grad.norm() for g in (x.grad, x_ref.grad))
    assert ours <= 1.5 * theirs + 1e-6


def test_results_do_not_depend_on_the_thread_count() -> None:
    if not kernels_available():
        pytest.skip("kernel unavailable")
    x = torch.randn(8, 16, 10, 10).bfloat16().requires_grad_()
    weight, bias = _affine("per-sample", 8, 16, torch.bfloat16)
    dy = torch.randn(8, 16, 10, 10).bfloat16()
    outputs = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            x.grad = None
            y = group_norm_silu(x, 4, weight, bias)
            y.backward(dy)
            outputs.append((y.detach(), x.grad.clone()))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for out in outputs[1:] for a, b in zip(out, outputs[0]))


@pytest.mark.parametrize("kind", AFFINES)
def test_switched_off_it_is_pytorchs_ops_bit_for_bit(kind: str) -> None:
    x = torch.randn(2, 8, 6, 6).bfloat16()
    weight, bias = _affine(kind, 2, 8, torch.bfloat16)
    if kind == "per-sample":
        composed = F.silu(F.group_norm(x, 4) * weight[:, :, None, None] + bias[:, :, None, None])
    else:
        composed = F.silu(F.group_norm(x, 4, weight, bias))
    with using_fast_ops(False):
        assert torch.equal(group_norm_silu(x, 4, weight, bias), composed)


def test_channels_last_runs_in_the_kernel_and_keeps_its_layout() -> None:
    if not kernels_available():
        pytest.skip("kernel unavailable")
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 8, 5, 7, dtype=torch.float64, generator=gen).contiguous(memory_format=torch.channels_last)
    weight, bias = _affine("per-sample", 3, 8, torch.float64)
    params = (x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_())
    y = group_norm_silu(*params[:1], 2, *params[1:])
    assert y.grad_fn.name() == "_GroupNormSiLUBackward" and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(lambda x, w, b: group_norm_silu(x, 2, w, b), params)
    nchw = x.detach().contiguous()
    assert torch.allclose(group_norm_silu(nchw, 2, weight, bias), y.detach().contiguous(), atol=1e-12, rtol=0)
    (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert dx.is_contiguous(memory_format=torch.channels_last)


def test_other_layouts_take_the_reference_path() -> None:
    x = torch.randn(2, 16, 6, 6)[:, ::2].requires_grad_()
    y = group_norm_silu(x, 4)
    assert y.grad_fn.name() != "_GroupNormSiLUBackward"
    assert torch.equal(y, reference(x, 4))


def test_bad_input_is_rejected_with_the_shapes() -> None:
    with pytest.raises(AmbientError, match=r"\(N, C, \*\)"):
        group_norm_silu(torch.randn(4, 8), 2)
    with pytest.raises(AmbientError, match="not a multiple of 3 groups"):
        group_norm_silu(torch.randn(2, 8, 4, 4), 3)
    with pytest.raises(AmbientError, match=r"weight must have shape \(8,\) or \(2, 8\)"):
        group_norm_silu(torch.randn(2, 8, 4, 4), 2, torch.ones(3, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert group_norm_silu(torch.randn(0, 8, 4, 4), 2).shape == (0, 8, 4, 4)
