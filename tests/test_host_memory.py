"""host_memory: the glibc malloc policy (thresholds set, the environment's choice, errors) and its effect."""

import os
import subprocess
import sys

import pytest

from ambient_omni import host_memory
from ambient_omni.errors import AmbientError


class _FakeLibc:
    """Records ``mallopt(param, value)`` calls and answers ``result``."""

    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


def test_tuned_sets_both_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc()
    monkeypatch.setattr(host_memory, "_applied", "default")
    monkeypatch.setattr(host_memory, "_glibc", lambda: libc)
    assert host_memory.tune_malloc("tuned") == "tuned"
    assert sorted(libc.calls) == [(-3, 32 * 1024 * 1024), (-1, 2**31 - 1)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    assert host_memory.tune_malloc("default") == "default" and host_memory.applied_malloc() == "tuned"  # not undone


def test_default_and_other_c_libraries_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc()
    monkeypatch.setattr(host_memory, "_glibc", lambda: libc)
    assert host_memory.tune_malloc("default") == "default" and libc.calls == []
    monkeypatch.setattr(host_memory, "_glibc", lambda: None)
    assert host_memory.tune_malloc("tuned") == "unavailable"


def test_the_environment_chooses_and_bad_values_are_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _FakeLibc()
    monkeypatch.setattr(host_memory, "_glibc", lambda: libc)
    monkeypatch.delenv("AMBIENT_MALLOC", raising=False)
    assert host_memory.malloc_policy() == "tuned"
    monkeypatch.setenv("AMBIENT_MALLOC", "default")
    assert host_memory.tune_malloc() == "default" and libc.calls == []
    monkeypatch.setenv("AMBIENT_MALLOC", "jemalloc")
    with pytest.raises(AmbientError, match="AMBIENT_MALLOC"):
        host_memory.tune_malloc()
    with pytest.raises(AmbientError, match="policy"):
        host_memory.tune_malloc("fast")


def test_a_refused_threshold_warns_and_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_memory, "_applied", "default")
    libc = _FakeLibc(result=0)
    monkeypatch.setattr(host_memory, "_glibc", lambda: libc)
    with pytest.warns(RuntimeWarning, match="mallopt refused M_MMAP_THRESHOLD and M_TRIM_THRESHOLD"):
        assert host_memory.tune_malloc("tuned") == "refused"
    assert host_memory.applied_malloc() == "refused" and len(libc.calls) == 2  # both were tried


# Thirty 2 MB blocks malloc-ed, written, then all freed, in a fresh process: under glibc's default policy they
# are above its initial 128 KiB mmap threshold, so each is mapped on its own and unmapped on free (the process's
# resident memory drops by all of it); tuned, they come from the heap and stay mapped for reuse. Prints the
# fraction of the written bytes the process gave back.
_GIVEN_BACK = """
import ctypes, os, sys
from ambient_omni.host_memory import tune_malloc
tune_malloc(sys.argv[1])
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
blocks = [libc.malloc(2_000_000) for _ in range(30)]
for block in blocks:
    ctypes.memset(block, 1, 2_000_000)
held = resident()
for block in blocks:
    libc.free(block)
print((held - resident()) / 60_000_000)
"""


def _given_back(policy: str) -> float:
    done = subprocess.run([sys.executable, "-c", _GIVEN_BACK, policy], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


@pytest.mark.skipif(host_memory._glibc() is None or not os.path.exists("/proc/self/statm"), reason="needs glibc on Linux")
def test_tuned_malloc_keeps_freed_memory_mapped() -> None:
    assert _given_back("default") > 0.95  # measured: 1.001 (all of it)
    assert _given_back("tuned") < 0.05  # measured: 0.0
