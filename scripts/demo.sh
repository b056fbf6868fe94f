#!/usr/bin/env bash
# One command: set up a fresh machine and run the Ambient-o demo on Fashion-MNIST (about 5 minutes on 2 idle CPU
# cores; docs/RESULTS.md section 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ambient demo "$@"
