"""The one place where the compute device and mixed precision are chosen.

Mixed precision: bf16 autocast runs the convolutions and matrix products in bfloat16 (8-bit mantissa)
and keeps reductions, the loss and the optimizer in float32. It is used on CUDA and on CPUs with native
bf16 arithmetic (the ``avx512_bf16`` or ``amx_bf16`` instruction sets), where it measured 1.7-2.1x the
float32 training throughput of ``fmnist-small`` (docs/RESULTS.md section 4); on other CPUs bf16 is
emulated and slower, so it stays off. ``$AMBIENT_CPU_BF16`` = ``1`` / ``0`` forces the CPU choice.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch

from ambient_omni.errors import AmbientError

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def pick_device(requested: str | None = None) -> torch.device:
    """Return ``requested`` if given, else ``$AMBIENT_DEVICE``, else CUDA when available, else CPU."""
    name = requested or os.environ.get("AMBIENT_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports in ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether bf16 autocast on this CPU is fast: ``$AMBIENT_CPU_BF16`` if set (``1``/``0``), else whether
    the CPU reports a native bf16 instruction set and torch's oneDNN backend can use it."""
    forced = os.environ.get("AMBIENT_CPU_BF16")
    if forced is not None:
        if forced not in ("0", "1"):
            raise AmbientError(f"AMBIENT_CPU_BF16 must be 0 or 1, got {forced!r}")
        return forced == "1"
    return bool(_cpu_flags() & set(_BF16_CPU_FLAGS)) and torch.backends.mkldnn.is_available()


def uses_bf16(device: torch.device, enabled: bool = True) -> bool:
    """Whether :func:`autocast` turns bf16 on for ``device``: ``enabled`` and (CUDA, or a CPU with native
    bf16, :func:`cpu_has_native_bf16`)."""
    if not enabled:
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`uses_bf16` says so; a no-op context otherwise."""
    if uses_bf16(device, enabled):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
