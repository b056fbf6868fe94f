"""Images/s of a bare fmnist-small training loop (fixed batch: forward + backward + Adam, no trainer), and the
bf16 modulation op timed both ways; the figures behind docs/RESULTS.md section 4's "Host memory" paragraph.

    AMBIENT_MALLOC=default|tuned .venv/bin/python scripts/bare_step_speed.py [--fp32 [--implicit-bf16]] [--preset P]
        [--steps N]
    .venv/bin/python scripts/bare_step_speed.py --modulation

Run one process per setting, alternating, on a quiet machine: the malloc policy is per process.
"""

from __future__ import annotations

import argparse
import time

import torch

from ambient_omni.host_memory import tune_malloc
from ambient_omni.networks.registry import build_network, preset_config


def loop_speed(preset: str, bf16: bool, steps: int, batch: int = 64) -> tuple[float, float]:
    """Images/s of ``steps`` timed steps (after 10 warm-up steps) on one fixed seeded batch, and the last loss."""
    torch.manual_seed(0)
    net = build_network(preset_config(preset))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(batch, 1, 28, 28)
    sigma = torch.exp(torch.randn(batch) * 1.2 - 1.2)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x + torch.randn_like(x) * sigma[:, None, None, None], sigma)
            loss = ((out.float() - x) ** 2).mean()
        loss.backward()
        opt.step()
        return float(loss.detach())

    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    return steps * batch / (time.perf_counter() - start), loss


def modulation_ms(repeats: int = 50) -> dict[str, float]:
    """Forward ms of ``addcmul(shift, h, scale + 1)`` against ``h * (scale + 1) + shift`` on bf16 64x32x28x28."""
    h = torch.randn(64, 32, 28, 28).bfloat16()
    scale, shift = torch.randn(64, 32, 1, 1).bfloat16(), torch.randn(64, 32, 1, 1).bfloat16()
    ops = {"addcmul": lambda: torch.addcmul(shift, h, scale + 1), "multiply + add": lambda: h * (scale + 1) + shift}
    times = {}
    for name, op in ops.items():
        for _ in range(5):
            op()
        start = time.perf_counter()
        for _ in range(repeats):
            op()
        times[name] = (time.perf_counter() - start) / repeats * 1e3
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fmnist-small")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modulation", action="store_true", help="time the modulation op instead")
    parser.add_argument("--implicit-bf16", action="store_true", help="let oneDNN run float32 convolutions and "
                        "matrix products in bf16 (torch.backends.mkldnn.*.fp32_precision = 'bf16'); with --fp32")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.implicit_bf16 and not args.fp32:
        parser.error("--implicit-bf16 changes the float32 path: use it with --fp32")
    torch.set_num_threads(args.threads)
    if args.implicit_bf16:
        torch.backends.mkldnn.conv.fp32_precision = torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    malloc = tune_malloc()
    if args.modulation:
        for name, ms in modulation_ms().items():
            print(f"{name:15s}: {ms:.3f} ms forward (bf16, 64x32x28x28, {args.threads} threads)")
        return
    speed, loss = loop_speed(args.preset, not args.fp32, args.steps)
    precision = ("fp32, implicit bf16" if args.implicit_bf16 else "fp32") if args.fp32 else "bf16"
    print(f"{args.preset} {precision}, malloc {malloc}, {args.threads} threads: {speed:.1f} img/s, "
          f"last loss {loss:.8f}")


if __name__ == "__main__":
    main()
