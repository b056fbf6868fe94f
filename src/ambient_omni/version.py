"""Which code produced a result: the package version and, in a git checkout, the commit and whether the
working tree had uncommitted changes. Benchmark cells store it, because a cell is cached by its
configuration, not by the code: a cell computed before a code change is kept until its folder is removed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ambient_omni import __version__


def _git(*args: str, cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def code_version(package_dir: Path | None = None) -> dict[str, str | bool | None]:
    """``{"package": version, "commit": sha or None, "dirty": bool or None}``; ``commit`` is ``None`` when
    the package is not inside a git checkout (an installed wheel) or git is missing."""
    where = package_dir or Path(__file__).resolve().parent
    commit = _git("rev-parse", "HEAD", cwd=where)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=where) if commit else None
    return {"package": __version__, "commit": commit, "dirty": None if status is None else bool(status)}
