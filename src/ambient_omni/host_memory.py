"""How the C library hands out host memory for CPU tensors: glibc ``malloc`` tuned for training loops.

A CPU training step allocates and frees the same few hundred megabytes of activations and gradients every
step, in blocks of 0.1-30 MB. With glibc's default policy much of that memory goes back to the kernel when
it is freed (blocks above the dynamic ``mmap`` threshold are unmapped; free space above the trim threshold
at the top of the heap is released), so the next step takes a page fault on every fresh 4 KiB page and the
kernel zeroes it. :func:`tune_malloc` keeps it: blocks up to 32 MiB (glibc's largest ``mmap`` threshold on
64-bit) come from the heap, and freed heap memory up to ``trim_threshold`` stays mapped for reuse.

Measured on this project's 2-core machine (``fmnist-small``, batch 64, 2 threads, one step = forward +
backward + Adam): float32 283-297 -> 396-424 img/s, bf16 437-468 -> 580-602 img/s (docs/RESULTS.md
section 4). The cost is resident memory: the process keeps its peak heap instead of returning it.

``$AMBIENT_MALLOC`` = ``tuned`` (the default for the ``ambient`` command) or ``default`` (leave glibc's
policy alone). Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings

from ambient_omni.errors import AmbientError

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc: the largest value it accepts
TRIM_THRESHOLD = 2**31 - 1  # the largest int: freed heap memory is kept for the process's next steps
_POLICIES = ("tuned", "default")
_applied = "default"  # what the last tune_malloc call did in this process (nothing yet: glibc's default policy)


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The C library this process runs on if it is glibc (``None`` for any other)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into the process, the C library's among them
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt  # noqa: B018 - raises AttributeError where the symbol is missing
    except (OSError, AttributeError):
        return None
    return libc


def _checked(value: str, name: str) -> str:
    """``value`` if it is a known policy, else an AmbientError naming ``name``."""
    if value not in _POLICIES:
        raise AmbientError(f"{name} must be 'tuned' or 'default', got {value!r}")
    return value


def malloc_policy() -> str:
    """``$AMBIENT_MALLOC`` validated: ``tuned`` (also when unset) or ``default``."""
    return _checked(os.environ.get("AMBIENT_MALLOC", "tuned"), "AMBIENT_MALLOC")


def applied_malloc() -> str:
    """What :func:`tune_malloc` last did in this process (``default`` if it never ran)."""
    return _applied


def tune_malloc(policy: str | None = None) -> str:
    """Apply ``policy`` (default :func:`malloc_policy`) to this process's glibc ``malloc``; returns what was
    done: ``tuned``, ``default`` (nothing changed), ``unavailable`` (not glibc: nothing changed) or ``refused``
    (glibc declined a threshold: a RuntimeWarning says so and the process runs on, slower, since a command is
    still correct under any malloc policy).

    ``tuned`` sets ``M_MMAP_THRESHOLD`` = 32 MiB and ``M_TRIM_THRESHOLD`` = 2^31 - 1 bytes (module doc).
    It affects allocations made afterwards; call it once, early. ``default`` cannot undo an earlier
    ``tuned`` (fixing a threshold turns off glibc's dynamic adjustment for the rest of the process).
    """
    global _applied
    policy = malloc_policy() if policy is None else _checked(policy, "malloc policy")
    if policy == "default":
        return "default"
    libc = _glibc()
    if libc is None:
        _applied = "unavailable"
        return _applied
    refused = [name for name, param, value in (("M_MMAP_THRESHOLD", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                               ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD, TRIM_THRESHOLD))
               if libc.mallopt(param, value) != 1]
    _applied = "refused" if refused else "tuned"
    if refused:
        warnings.warn(f"glibc mallopt refused {' and '.join(refused)}; running with what it kept (set "
                      "AMBIENT_MALLOC=default to skip tuning)", RuntimeWarning, stacklevel=2)
    return _applied
