"""What the CPU kernels and channels_last buy, measured in one process: four variants of the `fmnist-small`
training step (same initial weights, same fixed batch, Adam), interleaved in blocks of a few steps in an order
that rotates every round, so that all four see the same machine; the figures behind docs/RESULTS.md section 4's
"CPU kernels" paragraph.

    nchw fast     bf16, NCHW, the fast ops (fused GroupNorm + SiLU, pooling / up-sampling kernels)
    cl fast       bf16, channels_last, the fast ops (what `ambient train` runs on this CPU)
    nchw torch    bf16, NCHW, PyTorch's ops (AMBIENT_FAST_OPS=off)
    fp32 today    float32, NCHW, PyTorch's ops (today's path, but with this process's tuned malloc)

    .venv/bin/python scripts/fast_ops_ab.py [--preset fmnist-small] [--rounds 12] [--steps 4] [--threads 2]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fmnist-small")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4, help="steps per variant per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be at least 1")
    torch.set_num_threads(args.threads)
    tune_malloc()
    speeds = images_per_s(args.preset, args.rounds, args.steps)
    for name, (speed, loss) in speeds.items():
        print(f"{args.preset} {name:10s}: {speed:6.1f} img/s (last training loss {loss:.5f})")
    rate = {name: speed for name, (speed, _) in speeds.items()}
    print(f"channels_last / NCHW (fast ops) {rate['cl fast'] / rate['nchw fast']:.3f}; fast ops / PyTorch's (NCHW) "
          f"{rate['nchw fast'] / rate['nchw torch']:.3f}; ours / float32 {rate['cl fast'] / rate['fp32 today']:.3f}")


if __name__ == "__main__":
    main()
