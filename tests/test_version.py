"""code_version: the package version always; commit and dirty flag inside a git checkout, None outside."""

import subprocess
from pathlib import Path

from ambient_omni import __version__
from ambient_omni.version import code_version


def test_outside_a_checkout_only_the_package_version(tmp_path: Path) -> None:
    assert code_version(tmp_path) == {"package": __version__, "commit": None, "dirty": None}


def test_inside_a_checkout_the_commit_and_dirty_flag(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    info = code_version(tmp_path)
    assert info["commit"] == git("rev-parse", "HEAD") and info["dirty"] is False
    (tmp_path / "f.txt").write_text("b")
    assert code_version(tmp_path)["dirty"] is True


def test_pyproject_license_is_an_spdx_string() -> None:
    """``license = { text = ... }`` makes setuptools >= 77 print a deprecation box at every install."""
    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]
