"""``ambient benchmark-net --against-today ROUNDS``: our training path against today's, as whole processes.

Today's path is float32, eager, with glibc's default malloc and PyTorch's ops (``AMBIENT_FAST_OPS=off``); ours
is whatever the options select (bf16 autocast where the CPU has it, the tuned malloc of
:mod:`ambient_omni.host_memory`, the fast ops of :mod:`ambient_omni.networks.fast_ops`). The malloc policy belongs
to a process, so the comparison cannot interleave steps in one process as ``--against-fp32`` does: each round
runs ``benchmark-net`` twice as child processes, in ABBA order (today then ours in odd rounds, ours then today
in even ones) so that a machine speeding up or slowing down over the rounds favours neither side. Both children
train the same batches from the same initial weights, so their validation losses compare the two paths after
the same images; an even number of rounds balances the order. ``--json FILE`` writes ``{"rounds": [{"today": ROW,
"ours": ROW, "first": "today"|"ours"}, ...], "ratios": [...], "median_ratio": R}``, each ROW being the child's
figures for its network plus its ``malloc`` policy.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from ambient_omni.errors import AmbientError

# Options a child run repeats (the network, data and training settings), as (dest, flag).
CHILD_VALUES = (("preset", "--preset"), ("channels", "--channels"), ("channel_mult", "--channel-mult"),
                ("blocks", "--blocks"), ("attn_levels", "--attn-levels"), ("batch", "--batch"),
                ("resolution", "--resolution"), ("channels_in", "--channels-in"), ("images", "--images"),
                ("val_images", "--val-images"), ("lr", "--lr"), ("threads", "--threads"), ("seed", "--seed"),
                ("device", "--device"))
# Switches that select our path; today's child never gets them (``input_skip`` is part of the network: both do).
OUR_SWITCHES = (("no_bf16", "--no-bf16"), ("compile", "--compile"), ("channels_last", "--channels-last"))
# Comparisons and extra timings that belong to a single in-process run: refused with --against-today.
REFUSED = (("baseline", "--baseline"), ("against_fp32", "--against-fp32"), ("sample", "--sample"),
           ("data_path", "--data-path"))
# Environment variables that change glibc's malloc behind mallopt's back: both children run without them.
_MALLOC_ENV_PREFIXES = ("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")


def child_argv(args: argparse.Namespace, reference: bool) -> list[str]:
    """``benchmark-net`` arguments of one child run: today's path (``reference``: float32, eager, NCHW) or ours."""
    argv = [a for dest, flag in CHILD_VALUES if getattr(args, dest) is not None
            for a in (flag, str(getattr(args, dest)))]
    if args.input_skip is not None:
        argv.append("--input-skip" if args.input_skip else "--no-input-skip")
    if reference:
        return [*argv, "--no-bf16"]
    return argv + [flag for dest, flag in OUR_SWITCHES if getattr(args, dest)]


def child_env(reference: bool, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child, without glibc's malloc tunables (``MALLOC_*``, ``GLIBC_TUNABLES``) or a
    preloaded allocator, so that each row's ``malloc`` says what the child ran on: today's gets
    ``AMBIENT_MALLOC=default`` and ``AMBIENT_FAST_OPS=off`` (PyTorch's ops), ours the caller's settings
    (``tuned`` and ``on`` if unset)."""
    env = dict(os.environ if environ is None else environ)
    policy = "default" if reference else env.get("AMBIENT_MALLOC", "tuned")
    fast = "off" if reference else env.get("AMBIENT_FAST_OPS", "on")
    return {**{k: v for k, v in env.items() if not k.startswith(_MALLOC_ENV_PREFIXES)}, "AMBIENT_MALLOC": policy,
            "AMBIENT_FAST_OPS": fast}


def check_options(args: argparse.Namespace) -> None:
    """AmbientError for fewer than 1 round or an option that has no meaning in a process comparison."""
    if args.against_today < 1:
        raise AmbientError(f"--against-today needs a number of rounds >= 1, got {args.against_today}")
    extra = [flag for dest, flag in REFUSED if getattr(args, dest)]
    if extra:
        raise AmbientError(f"--against-today compares whole runs of our network only; drop {', '.join(extra)}")


def _run_child(name: str, args: argparse.Namespace, reference: bool, out: str) -> dict[str, Any]:
    """Run one child ``benchmark-net`` writing ``out``; its network's figures plus its malloc policy."""
    from ambient_omni.files import read_json

    cmd = [sys.executable, "-m", "ambient_omni.cli.main", "benchmark-net", *child_argv(args, reference),
           "--json", out]
    done = subprocess.run(cmd, env=child_env(reference), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        how = (f"was killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0
               else f"exited with code {done.returncode}")
        raise AmbientError(f"the {name} run {how} ({' '.join(cmd[3:])}):\n{done.stderr.strip()[-2000:]}")
    result = read_json(out)
    return {**result["networks"]["ours"], "malloc": result["malloc"]}


def row_line(round_: int, name: str, row: dict[str, Any]) -> str:
    """One run's line: img/s, validation loss, precision, malloc, FLOPs per image and the fraction of the
    child's measured matrix-product peak (in its precision) that its images/s achieve."""
    rate = row["flops_per_image"] * row["images_per_s"]
    return (f"round {round_} {name:5s}: {row['images_per_s']:.1f} img/s, validation loss {row['validation_loss']:.4f} "
            f"({row['precision']}, malloc {row['malloc']}, fast ops {'on' if row['fast_ops'] else 'off'}, "
            f"{row['memory_format']}); "
            f"{row['flops_per_image'] / 1e6:.1f} MFLOP per image, "
            f"{rate / 1e9:.1f} GFLOP/s = {rate / row['matmul_peak_flops']:.1%} of the measured {row['precision']} "
            f"matmul peak {row['matmul_peak_flops'] / 1e9:.0f} GFLOP/s")


def round_order(round_: int) -> tuple[str, str]:
    """ABBA: ``("today", "ours")`` in odd rounds (1, 3, ...), ``("ours", "today")`` in even ones."""
    return ("today", "ours") if round_ % 2 else ("ours", "today")


def against_today(args: argparse.Namespace) -> int:
    """Run ``args.against_today`` rounds (module doc); print every run and the median speed ratio ours/today."""
    from tqdm import tqdm

    from ambient_omni.files import write_json

    check_options(args)
    ratios, rounds = [], []
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=2 * args.against_today, desc="benchmark-net runs") as bar:
        for round_ in range(1, args.against_today + 1):
            rows, order = {}, round_order(round_)
            for name in order:
                rows[name] = _run_child(name, args, name == "today", os.path.join(tmp, f"{name}-{round_}.json"))
                bar.update(1)
                tqdm.write(row_line(round_, name, rows[name]))
            ratios.append(rows["ours"]["images_per_s"] / rows["today"]["images_per_s"])
            rounds.append({"today": rows["today"], "ours": rows["ours"], "first": order[0]})
    print(f"speed ratio ours/today: median {statistics.median(ratios):.2f}x over {len(ratios)} rounds "
          f"({', '.join(f'{r:.2f}' for r in ratios)}); today = float32, eager, glibc's default malloc; "
          f"rounds in ABBA order")
    if args.json:
        write_json(args.json, {"rounds": rounds, "ratios": ratios, "median_ratio": statistics.median(ratios)})
    return 0
