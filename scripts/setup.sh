#!/usr/bin/env bash
# Sets up a fresh machine for ambient_omni: the Debian Fashion-MNIST package (where apt exists),
# a virtual environment in .venv with the CPU build of torch 2.13.0, and the package itself.
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
    .venv/bin/pip install -q "torch==2.13.0"
fi
if ! .venv/bin/python -c "import ambient_omni" 2>/dev/null || [ pyproject.toml -nt .venv/.ambient_installed ]; then
    echo "[setup] installing ambient_omni and its dependencies"
    .venv/bin/pip install -q -e ".[dev]"
    touch .venv/.ambient_installed
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
