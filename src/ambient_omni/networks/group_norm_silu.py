"""``SiLU(GroupNorm(x) * weight + bias)`` as one op: the normalisation and activation before each convolution of
the U-Net, with the ResBlock's per-sample modulation as ``weight = 1 + scale, bias = shift``.

For ``x`` of shape ``(N, C, *)`` and ``G`` groups, with each sample's group of ``C / G`` channels normalised over
its channels and positions (biased variance, ``eps`` inside the square root):

    y[n, c] = SiLU((x[n, c] - mu[n, g(c)]) rstd[n, g(c)] weight[n, c] + bias[n, c]),   SiLU(z) = z sigmoid(z)

``weight`` and ``bias`` are ``None`` (1 and 0), per channel ``(C,)`` or per sample and channel ``(N, C)``.

On the CPU, for bfloat16 / float / double tensors, contiguous or channels_last, a small C++ kernel
(``csrc/group_norm_silu.cpp``, built by :mod:`ambient_omni.networks.cpu_kernels`) computes forward and backward in
one pass over each (sample, group) slab: it reads ``x`` once where PyTorch's GroupNorm, multiply, add and SiLU
each read and write a whole tensor, and it keeps one tensor for the backward instead of three. It rounds a bf16
result once instead of after every op. Without the kernel, on other devices, other memory layouts or under
``torch.compile`` the same function runs PyTorch's ops (the reference path, bit for bit what the network computed before the kernel existed); so does
``$AMBIENT_FAST_OPS=off`` (:mod:`ambient_omni.networks.fast_ops`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ambient_omni.errors import AmbientError
from ambient_omni.networks.fast_ops import kernels_take


class _GroupNormSiLU(torch.autograd.Function):
    """The kernel's forward and backward; ``weight, bias``: contiguous ``(N, C)`` in float (double for double
    ``x``), ``x`` contiguous or channels_last (the result and the gradient keep its layout)."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps):  # noqa: ANN001, ANN205 - autograd signature
        y, mean, rstd = torch.ops.ambient_omni.group_norm_silu_forward(x, weight, bias, groups, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.groups = groups
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        x, weight, bias, mean, rstd = ctx.saved_tensors
        layout = torch.channels_last if _channels_last(x) else torch.contiguous_format
        dx, dweight, dbias = torch.ops.ambient_omni.group_norm_silu_backward(
            dy.contiguous(memory_format=layout), x, weight, bias, mean, rstd, ctx.groups)
        return dx, dweight, dbias, None, None


def _check(x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None) -> None:
    """Reject shapes the op does not take, naming what was given."""
    if x.dim() < 3:
        raise AmbientError(f"group_norm_silu takes (N, C, *) tensors, got shape {tuple(x.shape)}")
    n, c = x.shape[:2]
    if groups < 1 or c % groups:
        raise AmbientError(f"group_norm_silu: {c} channels are not a multiple of {groups} groups")
    for label, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) not in ((c,), (n, c)):
            raise AmbientError(f"group_norm_silu: {label} must have shape ({c},) or ({n}, {c}), "
                               f"got {tuple(t.shape)}")


def _uses_kernel(x: torch.Tensor) -> bool:
    """Whether ``x`` goes through the fused kernel: :func:`~ambient_omni.networks.fast_ops.kernels_take`, and
    contiguous or channels_last."""
    return kernels_take(x) and (x.is_contiguous() or _channels_last(x))


def _channels_last(x: torch.Tensor) -> bool:
    """A 4-D tensor in channels_last memory (and not also contiguous, as 1 x 1 images are)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _per_sample(t: torch.Tensor | None, fill: float, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` as a contiguous ``(N, C)`` tensor of ``dtype`` (``fill`` where ``None``); autograd sums the
    gradient of an expanded ``(C,)`` over ``N`` and casts it back to ``t``'s dtype."""
    n, c = like.shape[:2]
    if t is None:
        return torch.full((n, c), fill, dtype=dtype, device=like.device)
    return t.to(dtype).expand(n, c).contiguous()


def reference(x: torch.Tensor, groups: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
              eps: float = 1e-5) -> torch.Tensor:
    """The same function from PyTorch's ops (GroupNorm, then the affine map, then SiLU)."""
    if weight is None or weight.dim() == 1:
        if bias is not None and bias.dim() == 2:
            return F.silu(F.group_norm(x, groups, weight, eps=eps) + _spatial(bias, x))
        return F.silu(F.group_norm(x, groups, weight, bias, eps))
    h = F.group_norm(x, groups, eps=eps) * _spatial(weight, x)
    return F.silu(h if bias is None else h + _spatial(bias, x))


def _spatial(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(C,)`` or ``(N, C)`` as ``(1 or N, C, 1, ..., 1)`` broadcasting against ``like``."""
    return t.reshape(-1 if t.dim() == 2 else 1, t.shape[-1], *([1] * (like.dim() - 2)))


def group_norm_silu(x: torch.Tensor, groups: int, weight: torch.Tensor | None = None,
                    bias: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """``SiLU(GroupNorm_groups(x) * weight + bias)`` (module doc); ``x``: ``(N, C, *)``, ``weight`` and ``bias``:
    ``None``, ``(C,)`` or ``(N, C)``. The result has ``x``'s dtype and shape."""
    _check(x, groups, weight, bias)
    if not _uses_kernel(x):
        return reference(x, groups, weight, bias, eps)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    return _GroupNormSiLU.apply(x, _per_sample(weight, 1.0, x, acc), _per_sample(bias, 0.0, x, acc), groups,
                                float(eps))
