"""What the CPU kernels and channels_last buy, measured in one process: four variants of the `fmnist-small`
training step (same initial weights, same fixed batch, Adam), interleaved in blocks of a few steps in an order
that rotates every round, so that all four see the same machine; the figures behind docs/RESULTS.md section 4's
"CPU kernels" paragraph.

    nchw fast     bf16, NCHW, the fast ops (fused GroupNorm + SiLU, pooling / up-sampling kernels)
    cl fast       bf16, channels_last, the fast ops (what `ambient train` runs on this CPU)
    nchw torch    bf16, NCHW, PyTorch's ops (AMBIENT_FAST_OPS=off)
    fp32 today    float32, NCHW, PyTorch's ops (today's path, but with this process's tuned malloc)

    .venv/bin/python scripts/fast_ops_ab.py [--preset fmnist-small] [--rounds 12] [--steps 4] [--threads 2]
    .venv/bin/python scripts/fast_ops_ab.py --kernel-ops   # the fused GroupNorm + SiLU alone against PyTorch's ops
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from ambient_omni.host_memory import tune_malloc
from ambient_omni.networks.fast_ops import using_fast_ops
from ambient_omni.networks.registry import build_network, preset_config

# name: (memory format, fast ops, bf16)
VARIANTS = {"nchw fast": (torch.contiguous_format, True, True), "cl fast": (torch.channels_last, True, True),
            "nchw torch": (torch.contiguous_format, False, True), "fp32 today": (torch.contiguous_format, False, False)}


def images_per_s(preset: str, rounds: int, steps: int, batch: int = 64) -> dict[str, tuple[float, float]]:
    """Images/s and last training loss of each variant over ``rounds`` timed rounds (after one warm-up round)."""
    torch.manual_seed(0)
    base = build_network(preset_config(preset))
    x = torch.randn(batch, 1, 28, 28)
    sigma, noise = torch.exp(torch.randn(batch) * 1.2 - 1.2), torch.randn(batch, 1, 28, 28)
    runs = {}
    for name, (layout, _, _) in VARIANTS.items():
        net = copy.deepcopy(base).to(memory_format=layout)
        runs[name] = (net, torch.optim.Adam(net.parameters(), 1e-3))

    def step(name: str) -> float:
        layout, fast, bf16 = VARIANTS[name]
        net, opt = runs[name]
        opt.zero_grad(set_to_none=True)
        noisy = (x + noise * sigma[:, None, None, None]).contiguous(memory_format=layout)
        with using_fast_ops(fast), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = ((net(noisy, sigma).float() - x) ** 2).mean()
        loss.backward()
        opt.step()
        return float(loss.detach())

    seconds, losses, names = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0), list(runs)
    for round_ in range(rounds + 1):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            start = time.perf_counter()
            for _ in range(steps):
                losses[name] = step(name)
            if round_:
                seconds[name] += time.perf_counter() - start
    return {name: (rounds * steps * batch / seconds[name], losses[name]) for name in runs}


def kernel_ops_ms(repeats: int = 30) -> dict[tuple[int, ...], tuple[float, float]]:
    """Forward + backward ms, bf16, of SiLU(GroupNorm(x) * (1 + scale) + shift) (the ResBlock's second norm,
    32 groups) by the fused kernel and by PyTorch's ops, at the U-Net's three largest shapes."""
    from bare_step_speed import op_ms  # scripts/ is on the path when this script runs

    from ambient_omni.networks.group_norm_silu import group_norm_silu

    def timed(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, fast: bool) -> float:
        def op() -> torch.Tensor:
            with using_fast_ops(fast):
                return group_norm_silu(x, 32, weight, bias)
        return op_ms(op, repeats, backward=True)

    gen = torch.Generator().manual_seed(0)
    times = {}
    for shape in ((64, 32, 28, 28), (64, 128, 28, 28), (64, 64, 14, 14)):
        x = torch.randn(shape, generator=gen).bfloat16().requires_grad_()
        weight = (1 + 0.1 * torch.randn(shape[:2], generator=gen)).bfloat16()
        bias = (0.1 * torch.randn(shape[:2], generator=gen)).bfloat16()
        times[shape] = (timed(x, weight, bias, True), timed(x, weight, bias, False))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fmnist-small")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4, help="steps per variant per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kernel-ops", action="store_true", help="time the fused GroupNorm + SiLU op alone")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    torch.set_num_threads(args.threads)
    tune_malloc()
    if args.kernel_ops:
        for shape, (fused, torch_ops) in kernel_ops_ms().items():
            print(f"{'x'.join(map(str, shape))}: fused {fused:.2f} ms, PyTorch's ops {torch_ops:.2f} ms "
                  f"(bf16, forward + backward, {args.threads} threads)")
        return
    speeds = images_per_s(args.preset, args.rounds, args.steps)
    for name, (speed, loss) in speeds.items():
        print(f"{args.preset} {name:10s}: {speed:6.1f} img/s (last training loss {loss:.5f})")
    rate = {name: speed for name, (speed, _) in speeds.items()}
    print(f"channels_last / NCHW (fast ops) {rate['cl fast'] / rate['nchw fast']:.3f}; fast ops / PyTorch's (NCHW) "
          f"{rate['nchw fast'] / rate['nchw torch']:.3f}; ours / float32 {rate['cl fast'] / rate['fp32 today']:.3f}")


if __name__ == "__main__":
    main()
