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
import time
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


def _bucket(rows: int, batch: int) -> int:
    """The padded size of a call of ``rows <= batch`` rows: the next power of two >= 8, capped at ``batch``."""
    return min(batch, max(8, 1 << (rows - 1).bit_length()))


class InferenceForward:
    """``model(x, *extra)`` for inference, as fast as this machine allows, returned in float32.

    No gradients; bf16 autocast where :func:`uses_bf16` says so; with ``compile`` the model runs through
    ``torch.compile`` with static shapes: calls are cut into ``batch`` rows and a shorter call is zero-padded
    to the next power of two (at least 8), so a handful of compiled graphs serve every call and padding at
    most doubles the work; the padding rows are dropped from the output. A compile that fails (no
    C++ compiler, an unsupported platform) falls back to eager once, with a warning. ``extra`` are per-row
    tensors (e.g. sigma ``(B,)``, labels ``(B,)``) or ``None``. Results are the model's up to bf16 rounding
    and, compiled, the reordering of float operations (docs/RESULTS.md section 4 measures both).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, bf16: bool = True, compile: bool = False,
                 batch: int = 256) -> None:
        if batch < 1:
            raise AmbientError(f"inference batch must be at least 1, got {batch}")
        self.model = model.to(device).eval()
        self.device, self.batch = device, int(batch)
        self.bf16 = uses_bf16(device, bf16)
        self.compiled: torch.nn.Module | None = None
        if compile:
            import torch._dynamo

            sizes = 1 + max(0, (self.batch - 1).bit_length() - 3)  # padded sizes 8, 16, ..., batch
            config = torch._dynamo.config  # one graph per size: keep them all instead of falling back to eager
            config.cache_size_limit = max(config.cache_size_limit, sizes + 2)
            self.compiled = torch.compile(self.model, dynamic=False)

    def _run(self, x: torch.Tensor, extra: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
        with torch.no_grad(), autocast(self.device, enabled=self.bf16):
            if self.compiled is not None:
                try:
                    return self.compiled(x, *extra).float()
                except Exception as err:  # noqa: BLE001 - any backend failure: fall back to eager once
                    import warnings

                    warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); running eager", stacklevel=3)
                    self.compiled = None
            return self.model(x, *extra).float()

    def warm_up(self, x: torch.Tensor, *extra: torch.Tensor | None) -> None:
        """Compile every padded size once, from the first row of example inputs (a no-op when not compiled)."""
        size = 8
        while self.compiled is not None:  # contiguous copies: the compiled graphs are specialised on strides
            self(x[:1].expand(size, *x.shape[1:]).contiguous(),
                 *(None if e is None else e[:1].expand(size, *e.shape[1:]).contiguous() for e in extra))
            if size >= self.batch:
                break
            size = min(2 * size, self.batch)

    def __call__(self, x: torch.Tensor, *extra: torch.Tensor | None) -> torch.Tensor:
        n, outs = x.shape[0], []
        if n == 0:
            raise AmbientError("InferenceForward: no inputs (a batch of 0 rows)")
        for start in range(0, n, self.batch):
            rows = slice(start, min(start + self.batch, n))
            xs = x[rows].to(self.device)
            es = tuple(None if e is None else e[rows].to(self.device) for e in extra)
            pad = _bucket(xs.shape[0], self.batch) - xs.shape[0] if self.compiled is not None else 0
            if pad:
                xs = torch.cat([xs, xs.new_zeros((pad, *xs.shape[1:]))])
                es = tuple(None if e is None else torch.cat([e, e[-1:].expand(pad, *e.shape[1:])]) for e in es)
            outs.append(self._run(xs, es)[: xs.shape[0] - pad])
        return torch.cat(outs)


def busy_cores(seconds: float = 0.2) -> float | None:
    """How many cores other processes keep busy now: ``cores * (1 - idle share)`` over ``seconds`` from
    ``/proc/stat`` (``None`` where it does not exist). Unlike the load average it does not remember a job
    that finished a minute ago."""
    def sample() -> tuple[int, int] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    first = sample()
    if first is None:
        return None
    time.sleep(seconds)
    second = sample()
    if second is None or second[0] <= first[0]:
        return None
    idle = (second[1] - first[1]) / (second[0] - first[0])
    return (os.cpu_count() or 1) * (1.0 - idle)


def choose_threads(cores: int | None = None, load: float | None = None) -> tuple[int, str]:
    """torch CPU threads for this process and why: ``$AMBIENT_THREADS`` if set; else ``$OMP_NUM_THREADS`` if set
    (torch reads it itself); else the cores other processes leave free, ``cores - round(load)`` with ``load``
    the cores busy right now (:func:`busy_cores`; the 1-minute load average where that is unavailable), at
    least 1. On a busy 2-core machine two threads stalled (104 against 153 img/s with one, docs/RESULTS.md
    section 4), on a quiet one they give 1.9x: so use every core only when it is idle."""
    cores = cores or os.cpu_count() or 1
    forced = os.environ.get("AMBIENT_THREADS")
    if forced is not None:
        if not forced.isdigit() or int(forced) < 1:
            raise AmbientError(f"AMBIENT_THREADS must be a positive integer, got {forced!r}")
        return int(forced), "AMBIENT_THREADS"
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"])), "OMP_NUM_THREADS"
    if load is None:
        load = busy_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # not available on this platform
            load = 0.0
    free = max(1, cores - int(round(load)))
    reason = "idle machine" if free == cores else f"{load:.1f} of {cores} cores busy"
    return free, reason
