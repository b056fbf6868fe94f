"""Small file helpers: atomic writes and JSON with a stable layout."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ambient_omni.errors import AmbientError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file in the error when it is malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str,
                   wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an advisory exclusive lock on ``path`` (created, holding the holder's pid) for the block.

    Another process holding it is an :class:`AmbientError` naming ``what``, or, with ``wait`` (a logger), a
    message to it and a wait until the holder lets go. The operating system drops the lock when its holder
    exits, even after ``kill -9``, so a crashed run never leaves a stale lock. Not re-entrant: a process that
    takes the same lock again inside the block waits for itself (``wait``) or fails. Where ``fcntl`` does not
    exist (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on this platform
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if wait is None:
                raise AmbientError(f"{what} is in use by process {holder} (lock {path}); wait for it to finish "
                                   "or choose another folder") from None
            wait(f"  waiting for process {holder}, which is making {what} (lock {path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$AMBIENT_CACHE``, else ``~/.cache/ambient_omni``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("AMBIENT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ambient_omni"
