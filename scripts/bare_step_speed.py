"""Images/s of a bare fmnist-small training loop (fixed batch: forward + backward + Adam, no trainer), where its
time goes, and single ops timed against their alternatives; the figures behind docs/RESULTS.md section 4's "Host
memory" and "On a second CPU" paragraphs.

    AMBIENT_MALLOC=default|tuned .venv/bin/python scripts/bare_step_speed.py [--fp32 [--implicit-bf16]] [--preset P]
        [--steps N]
    .venv/bin/python scripts/bare_step_speed.py --profile 10          # torch.profiler table over 10 steps
    AMBIENT_FAST_OPS=off|on .venv/bin/python scripts/bare_step_speed.py --profile-shapes 10   # per op and shape
    ONEDNN_VERBOSE=1 .venv/bin/python scripts/bare_step_speed.py --one-step | .venv/bin/python scripts/onednn_time.py
    .venv/bin/python scripts/bare_step_speed.py --modulation | --pool-ops

Run one process per setting, alternating, on a quiet machine: the malloc policy is per process.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ambient_omni.host_memory import tune_malloc
from ambient_omni.networks.registry import build_network, preset_config

ONE_STEP_MARKER = "=== one step"


def make_step(preset: str, bf16: bool, batch: int = 64) -> Callable[[], float]:
    """One training step of ``||D(x + sigma n; sigma) - x||^2`` on a fixed seeded batch (Adam); returns the loss."""
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

    return step


def loop_speed(step: Callable[[], float], steps: int, batch: int = 64) -> tuple[float, float]:
    """Images/s of ``steps`` timed steps (after 10 warm-up steps), and the last loss."""
    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    return steps * batch / (time.perf_counter() - start), loss


def profile_table(step: Callable[[], float], steps: int, shapes: bool = False) -> str:
    """torch.profiler's per-op table (self CPU time, top 25; with ``shapes`` one row per op and input shapes, top
    45) over ``steps`` steps after 8 warm-up steps."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(8):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages(group_by_input_shape=shapes).table(sort_by="self_cpu_time_total",
                                                                row_limit=45 if shapes else 25)


def op_ms(op: Callable[[], torch.Tensor], repeats: int, backward: bool = False) -> float:
    """Milliseconds per call of ``op`` (with the backward of a ones gradient if ``backward``), after 5 warm-ups."""
    def once() -> None:
        y = op()
        if backward:
            y.backward(torch.ones_like(y))

    for _ in range(5):
        once()
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    return (time.perf_counter() - start) / repeats * 1e3


def modulation_ms(repeats: int = 50) -> dict[str, float]:
    """Forward ms of ``addcmul(shift, h, scale + 1)`` against ``h * (scale + 1) + shift`` on bf16 64x32x28x28."""
    h = torch.randn(64, 32, 28, 28).bfloat16()
    scale, shift = torch.randn(64, 32, 1, 1).bfloat16(), torch.randn(64, 32, 1, 1).bfloat16()
    ops = {"addcmul": lambda: torch.addcmul(shift, h, scale + 1), "multiply + add": lambda: h * (scale + 1) + shift}
    return {name: op_ms(op, repeats) for name, op in ops.items()}


def pool_ops_ms(shape: tuple[int, int, int, int], repeats: int = 40) -> dict[str, float]:
    """Forward + backward ms, bf16, of the network's 2x2 average pooling and nearest up-sampling (to ``shape``)
    and of the alternatives looked at: adaptive / area pooling, pooling on a float32 copy, other up-samplings."""
    n, c, h, w = shape
    x = torch.randn(shape).bfloat16().requires_grad_()
    small = torch.randn(n, c, h // 2, w // 2).bfloat16().requires_grad_()
    ops = {"avg_pool2d": lambda: F.avg_pool2d(x, 2, ceil_mode=True),
           "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(x, (h // 2, w // 2)),
           "interpolate area": lambda: F.interpolate(x, size=(h // 2, w // 2), mode="area"),
           "avg_pool2d on fp32 copy": lambda: F.avg_pool2d(x.float(), 2, ceil_mode=True).to(x.dtype),
           "nearest": lambda: F.interpolate(small, size=(h, w), mode="nearest"),
           "nearest-exact": lambda: F.interpolate(small, size=(h, w), mode="nearest-exact"),
           "nearest scale_factor=2": lambda: F.interpolate(small, scale_factor=2, mode="nearest"),
           "nearest on fp32 copy": lambda: F.interpolate(small.float(), size=(h, w), mode="nearest").to(x.dtype)}
    return {name: op_ms(op, repeats, backward=True) for name, op in ops.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fmnist-small")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--implicit-bf16", action="store_true", help="let oneDNN run float32 convolutions and "
                        "matrix products in bf16 (torch.backends.mkldnn.*.fp32_precision = 'bf16'); with --fp32")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--profile", type=int, metavar="STEPS", help="print torch.profiler's table over STEPS steps")
    mode.add_argument("--profile-shapes", type=int, metavar="STEPS",
                      help="the same table with one row per op and input shapes")
    mode.add_argument("--one-step", action="store_true", help=f"3 warm-up steps, then {ONE_STEP_MARKER!r} and one "
                      "step (for ONEDNN_VERBOSE=1 ... | scripts/onednn_time.py)")
    mode.add_argument("--modulation", action="store_true", help="time the modulation op instead")
    mode.add_argument("--pool-ops", action="store_true", help="time the pooling and up-sampling ops instead")
    args = parser.parse_args()
    profile_steps = args.profile if args.profile is not None else args.profile_shapes
    if args.steps < 1 or (profile_steps is not None and profile_steps < 1):
        parser.error("--steps, --profile and --profile-shapes must be at least 1")
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
    if args.pool_ops:
        for shape in ((64, 32, 28, 28), (64, 64, 14, 14)):
            for name, ms in pool_ops_ms(shape).items():
                print(f"{'x'.join(map(str, shape))} {name:24s}: {ms:.2f} ms forward + backward (bf16)")
        return
    step = make_step(args.preset, not args.fp32)
    if profile_steps is not None:
        print(profile_table(step, profile_steps, shapes=args.profile_shapes is not None))
        return
    if args.one_step:
        for _ in range(3):
            step()
        print(ONE_STEP_MARKER, flush=True)
        step()
        return
    speed, loss = loop_speed(step, args.steps)
    precision = ("fp32, implicit bf16" if args.implicit_bf16 else "fp32") if args.fp32 else "bf16"
    print(f"{args.preset} {precision}, malloc {malloc}, {args.threads} threads: {speed:.1f} img/s, "
          f"last loss {loss:.8f}")


if __name__ == "__main__":
    main()
