"""Atomic writes, JSON helpers and the advisory lock."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ambient_omni.errors import AmbientError
from ambient_omni.files import atomic_write_bytes, exclusive_lock, read_json, write_json

HOLDER = """
import sys, time
from ambient_omni.files import exclusive_lock
with exclusive_lock(sys.argv[1], "a test"):
    print("locked", flush=True)
    time.sleep(1.0)
    open(sys.argv[1] + ".done", "w").close()
"""


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]


def test_files_get_umask_permissions_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o644


def test_json_round_trip_and_error_names_file(tmp_path: Path) -> None:
    write_json(tmp_path / "c.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "c.json") == {"a": [1, 2], "b": 1}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(tmp_path / "bad.json")


def test_a_held_lock_is_an_error_or_with_wait_a_message_and_a_wait(tmp_path: Path) -> None:
    pytest.importorskip("fcntl")
    lock = tmp_path / "locks" / "x.lock"
    for waiting in (False, True):
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            if not waiting:
                with pytest.raises(AmbientError, match=f"in use by process {holder.pid}"):
                    with exclusive_lock(lock, "the thing"):
                        pass
                continue
            messages: list[str] = []
            with exclusive_lock(lock, "the thing", wait=messages.append):
                assert Path(f"{lock}.done").exists()  # the block runs only once the holder has let go
            assert len(messages) == 1 and f"waiting for process {holder.pid}, which is making the thing" in messages[0]
        finally:
            holder.wait(timeout=30)
