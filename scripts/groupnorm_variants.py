"""Can a different GroupNorm let bf16 training use channels_last? Training steps of a preset with six GroupNorm
variants, interleaved in one process (same initial weights, same batches); the figures behind docs/RESULTS.md
section 4's "GroupNorm variants" paragraph.

channels_last would spare oneDNN the NCHW <-> blocked reorders around every bf16 convolution (22% of its time in
an `fmnist-small` step), but PyTorch's GroupNorm on channels_last bf16 tensors is an order of magnitude slower
than on NCHW ones. The variants:

    native NCHW      nn.GroupNorm as the network has it (the training path)
    fused NCHW       one autograd Function for ``GN(x) * W[n, c] + B[n, c]`` (float32 statistics from sums,
                     the ResBlock's modulation ``(1 + scale, shift)`` folded into ``W, B``), NCHW tensors
    fused CL         the same Function on channels_last tensors (reductions over the (N, HW, C) view)
    native CL        nn.GroupNorm on channels_last tensors
    CL, GN in fp32   channels_last, each GroupNorm computed on a float32 copy
    CL, GN on NCHW   channels_last, each GroupNorm computed on an NCHW copy

    .venv/bin/python scripts/groupnorm_variants.py [--preset fmnist-small] [--rounds 6] [--check]

``--check`` first verifies the fused Function's gradients in float64 (torch.autograd.gradcheck) for both layouts
and for per-channel and per-sample affine parameters.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from ambient_omni.host_memory import tune_malloc
from ambient_omni.networks import unet
from ambient_omni.networks.registry import build_network, preset_config


def _flat(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(N, C, H, W)`` as a 3-D view and its spatial dim: ``(N, HW, C), 1`` if channels_last, else ``(N, C, HW), 2``."""
    n, c, h, w = x.shape
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c), 1
    return x.reshape(n, c, h * w), 2


def _unflat(y: torch.Tensor, like: torch.Tensor, dim: int) -> torch.Tensor:
    """The inverse of :func:`_flat`: ``y`` back to ``like``'s shape and memory format."""
    n, c, h, w = like.shape
    return y.view(n, c, h, w) if dim == 2 else y.view(n, h, w, c).permute(0, 3, 1, 2)


def _per_channel(t: torch.Tensor, cg: int) -> torch.Tensor:
    """``(N, G)`` group values repeated over each group's ``cg`` channels: ``(N, G * cg)``."""
    return t.unsqueeze(2).expand(-1, -1, cg).reshape(t.shape[0], -1)


class FusedGroupNorm(torch.autograd.Function):
    """``y = (x - mu_g) rstd_g W[n, c] + B[n, c]`` with ``mu_g, rstd_g`` over each sample's group of channels;
    ``W, B`` of shape ``(C,)`` or ``(N, C)``. Backward: with ``xhat = (x - mu) rstd`` and ``g = dy W``,
    ``dx = rstd (g - mean_group(g) - xhat mean_group(g xhat))``, ``dW = sum_hw dy xhat``, ``dB = sum_hw dy``."""

    @staticmethod
    def forward(ctx, x, groups, weight, bias, eps):  # noqa: ANN001, ANN205 - autograd signature
        n, c = x.shape[:2]
        acc, cg = torch.promote_types(x.dtype, torch.float32), c // groups
        xv, dim = _flat(x)
        m = xv.shape[dim] * cg
        # Single-pass moments E[x^2] - E[x]^2 in float32: fine for normalised activations, inexact when |mean| >> std.
        mean = xv.sum(dim, dtype=acc).view(n, groups, cg).sum(2) / m
        var = ((xv * xv).sum(dim, dtype=acc).view(n, groups, cg).sum(2) / m - mean * mean).clamp_min(0)
        mean_c, rstd_c = _per_channel(mean, cg), _per_channel((var + eps).rsqrt(), cg)
        a = rstd_c * weight.to(acc).expand(n, c)
        b = bias.to(acc).expand(n, c) - mean_c * a
        ctx.save_for_backward(x, mean_c, rstd_c, weight)
        ctx.groups, ctx.bias_shape, ctx.bias_dtype = groups, bias.shape, bias.dtype
        return _unflat(torch.addcmul(b.unsqueeze(dim).to(x.dtype), xv, a.unsqueeze(dim).to(x.dtype)), x, dim)

    @staticmethod
    def backward(ctx, dy):  # noqa: ANN001, ANN205
        x, mean_c, rstd_c, weight = ctx.saved_tensors
        n, c = x.shape[:2]
        cg = c // ctx.groups
        xv, dim = _flat(x)
        dyv, _ = _flat(dy.contiguous(memory_format=torch.channels_last if dim == 1 else torch.contiguous_format))
        m = xv.shape[dim] * cg
        sum_dy = dyv.sum(dim, dtype=mean_c.dtype)
        sum_dy_xhat = ((dyv * xv).sum(dim, dtype=mean_c.dtype) - mean_c * sum_dy) * rstd_c
        w = weight.to(mean_c.dtype).expand(n, c)
        mean_g = _per_channel((w * sum_dy).view(n, ctx.groups, cg).sum(2) / m, cg)
        mean_g_xhat = _per_channel((w * sum_dy_xhat).view(n, ctx.groups, cg).sum(2) / m, cg)
        coef_dy, coef_x = rstd_c * w, -rstd_c * rstd_c * mean_g_xhat
        const = -rstd_c * mean_g - coef_x * mean_c
        dx = torch.addcmul(torch.addcmul(const.unsqueeze(dim).to(dy.dtype), dyv, coef_dy.unsqueeze(dim).to(dy.dtype)),
                           xv, coef_x.unsqueeze(dim).to(dy.dtype))
        dw = sum_dy_xhat if weight.dim() == 2 else sum_dy_xhat.sum(0)
        db = sum_dy if len(ctx.bias_shape) == 2 else sum_dy.sum(0)
        return _unflat(dx, x, dim), None, dw.to(weight.dtype), db.to(ctx.bias_dtype), None


def _fused(norm: nn.GroupNorm, x: torch.Tensor, weight: torch.Tensor | None = None,
           bias: torch.Tensor | None = None) -> torch.Tensor:
    """``norm``'s GroupNorm through :class:`FusedGroupNorm`, with ``weight, bias`` (default: ``norm``'s own)."""
    ones, zeros = torch.ones(x.shape[1]), torch.zeros(x.shape[1])
    weight = weight if weight is not None else (norm.weight if norm.affine else ones)
    bias = bias if bias is not None else (norm.bias if norm.affine else zeros)
    return FusedGroupNorm.apply(x, norm.num_groups, weight, bias, norm.eps)


class _Mode:
    """Which variant the patched modules run (one process runs them all, in turn)."""
    fused = False
    group_norm = "native"  # or "fp32", "nchw": what nn.GroupNorm does with channels_last input


_RESBLOCK, _GROUP_NORM = unet.ResBlock.forward, nn.GroupNorm.forward


def _resblock(self: unet.ResBlock, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """ResBlock.forward; in the fused variants norm2 and the modulation are one FusedGroupNorm."""
    if not _Mode.fused:
        return _RESBLOCK(self, x, emb)
    h = self.conv1(F.silu(_fused(self.norm1, x)))
    scale, shift = self.emb_proj(emb).chunk(2, dim=1)
    return self.skip(x) + self.conv2(self.dropout(F.silu(_fused(self.norm2, h, scale + 1, shift))))


def _group_norm(self: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """nn.GroupNorm.forward as the current variant computes it."""
    if _Mode.fused:
        return _fused(self, x)
    if _Mode.group_norm == "fp32":
        return _GROUP_NORM(self, x.float()).to(x.dtype)
    if _Mode.group_norm == "nchw":
        return _GROUP_NORM(self, x.contiguous()).contiguous(memory_format=torch.channels_last)
    return _GROUP_NORM(self, x)


VARIANTS = {"native NCHW": (False, False, "native"), "fused NCHW": (True, False, "native"),
            "fused CL": (True, True, "native"), "native CL": (False, True, "native"),
            "CL, GN in fp32": (False, True, "fp32"), "CL, GN on NCHW": (False, True, "nchw")}


def gradcheck() -> None:
    """float64 gradcheck of :class:`FusedGroupNorm`: NCHW / channels_last x per-channel / per-sample affine."""
    torch.manual_seed(0)
    for channels_last in (False, True):
        for shape in ((16,), (3, 16)):
            x = torch.randn(3, 16, 5, 7, dtype=torch.float64)
            x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            w, b = (torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(2))
            ok = torch.autograd.gradcheck(lambda x, w, b: FusedGroupNorm.apply(x, 4, w, b, 1e-5),
                                          (x.requires_grad_(), w, b))
            print(f"gradcheck {'channels_last' if channels_last else 'NCHW'}, affine {shape}: {ok}")


def training_img_s(preset: str, rounds: int, steps: int, batch: int) -> dict[str, tuple[float, float]]:
    """Images/s and final loss of each variant (bf16 autocast, Adam), ``rounds`` x ``steps`` timed steps each."""
    unet.ResBlock.forward, nn.GroupNorm.forward = _resblock, _group_norm
    torch.manual_seed(0)
    config = preset_config(preset)
    base = build_network(config)
    shape = (batch, config["in_channels"], 28, 28)  # the fmnist presets' resolution
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(shape, generator=gen), torch.exp(torch.randn(batch, generator=gen) * 1.2 - 1.2),
                torch.randn(shape, generator=gen)) for _ in range(steps)]
    runs = {}
    for name, (fused, cl, gn) in VARIANTS.items():
        fmt = torch.channels_last if cl else torch.contiguous_format
        net = copy.deepcopy(base).to(memory_format=fmt)
        runs[name] = (net, torch.optim.Adam(net.parameters(), 1e-3), fused, fmt, gn)
    seconds, loss = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
    names = list(runs)
    for round_ in range(rounds + 1):  # round 0 warms up; the order rotates so that no variant always runs first
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            net, opt, fused, fmt, gn = runs[name]
            _Mode.fused, _Mode.group_norm = fused, gn
            start = time.perf_counter()
            for x, sigma, noise in batches:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = net((x + noise * sigma[:, None, None, None]).contiguous(memory_format=fmt), sigma)
                    step_loss = (out.float() - x).square().mean()
                opt.zero_grad(set_to_none=True)
                step_loss.backward()
                opt.step()
            if round_:
                seconds[name] += time.perf_counter() - start
            loss[name] = float(step_loss.detach())
    return {name: (rounds * steps * batch / seconds[name], loss[name]) for name in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fmnist-small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=8, help="steps per variant per round")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--check", action="store_true", help="gradcheck the fused GroupNorm first")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_malloc()
    if args.check:
        gradcheck()
    for name, (speed, loss) in training_img_s(args.preset, args.rounds, args.steps, args.batch).items():
        print(f"{args.preset} bf16 {name:15s}: {speed:6.1f} img/s (last training loss {loss:.5f})")


if __name__ == "__main__":
    main()
