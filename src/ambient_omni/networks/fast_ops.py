"""The network's CPU fast ops and the switch that selects them.

Three ops of the U-Net have faster CPU forms with the same math, C++ kernels of
:mod:`ambient_omni.networks.cpu_kernels`: the normalisation + activation before each convolution
(:mod:`ambient_omni.networks.group_norm_silu`), and the 2 x 2 average pooling and 2x nearest up-sampling between
the levels (:func:`downsample`, :func:`upsample`: bit for bit PyTorch's results and gradients).
``$AMBIENT_FAST_OPS`` = ``on`` (the default) or ``off`` selects them for the process; :func:`set_fast_ops` and
:func:`using_fast_ops` override it (benchmarks time today's path, ``off``, beside ours in one process). ``off`` runs exactly the PyTorch ops the network ran
before these existed. With the fast ops, :func:`memory_format_for` trains the U-Net in channels_last on the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ambient_omni.errors import AmbientError

_override: list[bool | None] = [None]
# Set on an nn.GroupNorm whose forward always goes through group_norm_silu (see memory_format_for).
FUSED_NORM_TAG = "ambient_runs_fused"


def _env_enabled() -> bool:
    """``$AMBIENT_FAST_OPS`` validated: ``on`` (also when unset) or ``off``."""
    value = os.environ.get("AMBIENT_FAST_OPS", "on")
    if value not in ("on", "off"):
        raise AmbientError(f"AMBIENT_FAST_OPS must be 'on' or 'off', not {value!r}")
    return value == "on"


def set_fast_ops(enabled: bool | None) -> None:
    """Use the fast ops (``True``), PyTorch's (``False``), or what ``$AMBIENT_FAST_OPS`` says (``None``)."""
    _override[0] = enabled


def fast_ops_enabled() -> bool:
    """Whether the fast ops are selected (:func:`set_fast_ops`, else ``$AMBIENT_FAST_OPS``)."""
    return _env_enabled() if _override[0] is None else _override[0]


@contextmanager
def using_fast_ops(enabled: bool) -> Iterator[None]:
    """Select the fast ops (or not) inside the block, restoring the previous choice after it."""
    previous = _override[0]
    _override[0] = enabled
    try:
        yield
    finally:
        _override[0] = previous


KERNEL_DTYPES = (torch.bfloat16, torch.float32, torch.float64)


def kernels_take(x: torch.Tensor) -> bool:
    """Whether a C++ kernel may run on ``x`` (its layout aside, which each op checks): fast ops on, a non-empty CPU
    tensor of a kernel dtype, not under ``torch.compile`` (compiled code traces PyTorch's ops), the kernels built."""
    from ambient_omni.networks.cpu_kernels import kernels_available

    return (fast_ops_enabled() and x.device.type == "cpu" and x.dtype in KERNEL_DTYPES and x.numel() > 0
            and not torch.compiler.is_compiling() and kernels_available())


def _kernel_input(x: torch.Tensor) -> bool:
    """Whether the resampling kernels take ``x``: :func:`kernels_take`, (N, C, H, W), a layout they read."""
    return x.dim() == 4 and kernels_take(x) and _readable(x)


def _readable(t: torch.Tensor) -> bool:
    """Rows of contiguous pixels (NCHW-like) or contiguous channels (channels_last-like), other strides free."""
    return (t.stride(3) == 1 and t.stride(2) == t.shape[3]) or t.stride(1) == 1


def _planes(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself if the kernels read its layout, else a contiguous copy."""
    return t if _readable(t) else t.contiguous()


class _Pool2x2(torch.autograd.Function):
    """2 x 2 average pooling of an even-sized ``(N, C, H, W)``, forward and backward by the C++ kernels
    (``csrc/resample.cpp``): PyTorch's avg_pool2d and its gradient ``dx = upsample_nearest(dy) / 4``, bit for bit,
    in a fraction of their time on bf16 CPU tensors (docs/RESULTS.md section 4)."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205 - autograd signature
        return torch.ops.ambient_omni.pool2x2_forward(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        return torch.ops.ambient_omni.pool2x2_backward(_planes(dy))


class _Upsample2x(torch.autograd.Function):
    """Nearest 2x up-sampling of ``(N, C, H, W)``; its gradient sums each 2 x 2 block of ``dy``, read in place
    from a channel slice of a concatenation's gradient (PyTorch's upsample_nearest2d and its backward, bit for bit)."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return torch.ops.ambient_omni.upsample2x_forward(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        return torch.ops.ambient_omni.upsample2x_backward(_planes(dy))


def downsample(h: torch.Tensor) -> torch.Tensor:
    """Ceil-mode 2 x 2 average pooling of ``(N, C, H, W)`` (an odd edge averages the pixels it has)."""
    if h.shape[-2] % 2 or h.shape[-1] % 2 or not _kernel_input(h):
        return F.avg_pool2d(h, 2, ceil_mode=True)
    return _Pool2x2.apply(h)


def upsample(h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest up-sampling of ``(N, C, H, W)`` to ``size`` (``F.interpolate``'s ``mode="nearest"``)."""
    if tuple(size) != (2 * h.shape[-2], 2 * h.shape[-1]) or not _kernel_input(h):
        return F.interpolate(h, size=tuple(size), mode="nearest")
    return _Upsample2x.apply(h)


def memory_format_for(model: torch.nn.Module, device: torch.device) -> torch.memory_format:
    """The memory format to train ``model`` in: ``channels_last`` on the CPU when the fast ops and kernels are on
    and every GroupNorm of ``model`` runs in the fused kernel (tagged ``FUSED_NORM_TAG``, as the U-Net's are), else
    ``contiguous_format``. channels_last spares oneDNN the NCHW <-> blocked reorders around every bf16
    convolution (+11% for an ``fmnist-small`` step, docs/RESULTS.md section 4); PyTorch's own GroupNorm on
    channels_last bf16 tensors is an order of magnitude slower, hence the condition."""
    from ambient_omni.networks.cpu_kernels import kernels_available

    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    fused = bool(norms) and all(getattr(m, FUSED_NORM_TAG, False) for m in norms)
    if device.type == "cpu" and fused and fast_ops_enabled() and kernels_available():
        return torch.channels_last
    return torch.contiguous_format
