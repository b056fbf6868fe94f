"""The project's C++ CPU kernels (``csrc/*.cpp``): built on first use, loaded once per process.

The kernels register PyTorch operators under ``torch.ops.ambient_omni``: the fused GroupNorm + SiLU
(:mod:`ambient_omni.networks.group_norm_silu`) and the 2 x 2 pooling / up-sampling with their backward passes
(:mod:`ambient_omni.networks.fast_ops`). ``torch.utils.cpp_extension`` compiles them with the machine's C++
compiler and ``ninja`` (a dependency), about 30 s, once (``scripts/setup.sh`` does it), into
``$TORCH_EXTENSIONS_DIR/<name>``, else ``~/.cache/ambient_omni/kernels/torch-<version>/<name>`` (``$XDG_CACHE_HOME``
respected), with a lock file against concurrent builds (torchrun ranks). The build is named after the CPU capability PyTorch detected (AVX512, AVX2 or
baseline flags), so a cache shared between machines never loads instructions a CPU lacks. Where the build fails
(no compiler), :func:`kernels_available` is False, a RuntimeWarning says why, and every op runs PyTorch's own.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

SOURCES = tuple(sorted((Path(__file__).parent / "csrc").glob("*.cpp")))
_ARCH_FLAGS = {"AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
               "AVX2": ["-mavx2", "-mfma"]}
_lock = threading.Lock()
_built: list[bool | None] = [None]


def build_directory(name: str) -> Path:
    """Where the library ``name`` is built: ``$TORCH_EXTENSIONS_DIR/<name>``, else the user's cache folder."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        root = str(cache / "ambient_omni" / "kernels" / f"torch-{torch.__version__}")
    return Path(root) / name


def kernels_available() -> bool:
    """Build (once, then from the cache) and load the kernels; False, with a RuntimeWarning saying why, if that
    fails."""
    with _lock:
        if _built[0] is None:
            _built[0] = build(SOURCES)
    return bool(_built[0])


@contextmanager
def _ninja_on_path() -> Iterator[None]:
    """cpp_extension runs ``ninja`` from ``$PATH``: add the PyPI package's binary folder (a virtual environment's
    ``bin``, not on ``$PATH`` unless activated) for the build, then restore ``$PATH``."""
    try:
        import ninja
    except ImportError:
        yield
        return
    previous = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, previous]) if previous else ninja.BIN_DIR
    try:
        yield
    finally:
        os.environ["PATH"] = previous


def build(sources: tuple[Path, ...]) -> bool:
    """Compile and load ``sources`` as one library (module doc); True when its operators are registered."""
    capability = torch.backends.cpu.get_cpu_capability()
    name = f"ambient_omni_cpu_kernels_{capability.lower()}"
    directory = build_directory(name)
    if not (directory / f"{name}.so").exists():
        print(f"ambient: compiling the CPU kernels into {directory} (once, about 30 s)", file=sys.stderr, flush=True)
    try:
        from torch.utils.cpp_extension import load

        directory.mkdir(parents=True, exist_ok=True)
        with _ninja_on_path():
            load(name=name, sources=[str(s) for s in sources], build_directory=str(directory),
                 is_python_module=False, extra_ldflags=["-fopenmp"],
                 extra_cflags=["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
                               *_ARCH_FLAGS.get(capability, [])])
    except Exception as error:  # noqa: BLE001 - any build or load failure means: use PyTorch's ops
        message = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        warnings.warn(f"the CPU kernels are unavailable ({type(error).__name__}: {message}); using PyTorch's ops, "
                      "which are slower on the CPU", RuntimeWarning, stacklevel=3)
        return False
    return True
