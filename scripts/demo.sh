#!/usr/bin/env bash
# One command: set up a fresh machine and run the Ambient-o demo on Fashion-MNIST (about 17 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ambient demo "$@"
