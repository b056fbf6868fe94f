"""Building the C++ kernels: they build where a compiler is, a failed build warns and leaves PyTorch's ops, and
the cache folder follows the environment and the CPU capability."""

import os
import shutil

import pytest
import torch

from ambient_omni.networks import cpu_kernels


def test_the_kernels_build_where_there_is_a_compiler() -> None:
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler: PyTorch's ops are used (tests/test_networks_fast_ops.py)")
    assert cpu_kernels.kernels_available()
    assert hasattr(torch.ops.ambient_omni, "group_norm_silu_forward")
    assert hasattr(torch.ops.ambient_omni, "upsample2x_backward")


def test_a_failed_build_warns_and_reports_false(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "build"))
    with pytest.warns(RuntimeWarning, match="CPU kernels are unavailable"):
        assert cpu_kernels.build((tmp_path / "missing.cpp",)) is False


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    assert cpu_kernels.build_directory("lib") == tmp_path / "ext" / "lib"
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cpu_kernels.build_directory("lib") == (tmp_path / "cache" / "ambient_omni" / "kernels" /
                                                 f"torch-{torch.__version__}" / "lib")


def test_every_source_is_compiled() -> None:
    assert {p.name for p in cpu_kernels.SOURCES} == {"group_norm_silu.cpp", "resample.cpp"}


def test_ninja_from_the_environment_is_put_on_the_path_for_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    ninja = pytest.importorskip("ninja")
    monkeypatch.setenv("PATH", "/nowhere")
    with cpu_kernels._ninja_on_path():
        assert os.environ["PATH"].split(os.pathsep)[0] == ninja.BIN_DIR
    assert os.environ["PATH"] == "/nowhere"
