"""Why channels_last does not pay in bf16 on this CPU: GroupNorm timing per memory format, then whole training steps.

1. One GroupNorm (64 x 32 x 28 x 28, 8 groups), forward + backward, float32 / bf16 x NCHW / channels_last.
2. Training steps of a network preset (EDM-style loss, Adam, batch 64), interleaved step by step in one process
   so every variant sees the same machine state: bf16 / fp32 x NCHW / channels_last, where channels_last runs
   each GroupNorm on an NCHW copy (``--gn-copy``, the workaround for the slow channels_last bf16 kernel) or
   as it is.

    .venv/bin/python scripts/channels_last_probe.py --preset fmnist-small --threads 2 --gn-copy
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from ambient_omni.networks.registry import build_network, preset_config

_GROUP_NORM_FORWARD = nn.GroupNorm.forward


def _group_norm_on_nchw_copy(self: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """GroupNorm of a channels_last tensor computed on its NCHW copy, returned channels_last."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return _GROUP_NORM_FORWARD(self, x.contiguous()).contiguous(memory_format=torch.channels_last)
    return _GROUP_NORM_FORWARD(self, x)


def group_norm_ms(x: torch.Tensor, repeats: int = 50) -> float:
    """Milliseconds per forward + backward of one GroupNorm (8 groups, affine) of ``x``."""
    x = x.detach().requires_grad_()
    weight, bias = torch.ones(x.shape[1], requires_grad=True), torch.zeros(x.shape[1], requires_grad=True)
    for _ in range(5):
        F.group_norm(x, 8, weight, bias).sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        y = F.group_norm(x, 8, weight, bias)
        y.backward(torch.ones_like(y))
    return (time.perf_counter() - start) / repeats * 1e3


def _step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, sigma: torch.Tensor, bf16: bool) -> None:
    """One step of ``||D(x + sigma n; sigma) - x||^2`` (unweighted: only the time matters here)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = net(x + sigma[:, None, None, None] * torch.randn_like(x), sigma)
        loss = (out.float() - x).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def training_img_s(preset: str, steps: int, batch: int) -> dict[str, float]:
    """Images/s of each (precision, memory format) variant, same initial weights, interleaved step by step."""
    variants = {}
    for name, bf16, fmt in (("bf16 NCHW", True, torch.contiguous_format), ("bf16 channels_last", True, torch.channels_last),
                            ("fp32 NCHW", False, torch.contiguous_format), ("fp32 channels_last", False, torch.channels_last)):
        torch.manual_seed(0)
        net = build_network(preset_config(preset)).to(memory_format=fmt)
        variants[name] = (net, torch.optim.Adam(net.parameters(), 1e-3), bf16, fmt)
    images, sigma = torch.randn(batch, 1, 28, 28), torch.rand(batch) + 0.1
    seconds = dict.fromkeys(variants, 0.0)
    for i in range(steps + 3):
        for name, (net, opt, bf16, fmt) in variants.items():
            start = time.perf_counter()
            _step(net, opt, images.contiguous(memory_format=fmt), sigma, bf16)
            if i >= 3:
                seconds[name] += time.perf_counter() - start
    return {name: steps * batch / s for name, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fmnist-small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--gn-copy", action="store_true", help="run GroupNorm of channels_last tensors on an NCHW copy")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(64, 32, 28, 28)
    group_norm_ms(x, 20)  # warm-up: the process's first GroupNorm calls run several times slower
    for dtype in (torch.float32, torch.bfloat16):
        for fmt in (torch.contiguous_format, torch.channels_last):
            ms = group_norm_ms(x.to(dtype).contiguous(memory_format=fmt))
            print(f"GroupNorm {str(dtype)[6:]:>8s} {'channels_last' if fmt == torch.channels_last else 'NCHW':>13s}: "
                  f"{ms:.3f} ms forward + backward")
    if args.gn_copy:
        nn.GroupNorm.forward = _group_norm_on_nchw_copy
    for name, speed in training_img_s(args.preset, args.steps, args.batch).items():
        print(f"{args.preset} {name:>18s}{' (GroupNorm on NCHW copy)' if args.gn_copy and 'last' in name else ''}: "
              f"{speed:.0f} img/s")


if __name__ == "__main__":
    main()
