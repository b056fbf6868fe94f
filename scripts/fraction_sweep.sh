#!/usr/bin/env bash
# The `fraction` recipe's cells for one training seed, in the order that answers the most first
# (docs/RESULTS.md section 7): every method at the shortest budget of the 300-clean set; clean-only at
# 300k and 600k (where it starts to copy its clean images: at 600k it copies 18-19%, the budget the
# comparison needs); every method at 300k and 600k; then 1.2M; then the 1,000-clean set. Each
# `ambient bench` call resumes where it stopped (finished cells are kept; a longer budget continues the
# shorter cell's checkpoint), so rerunning this script after an interruption continues the sweep. One
# thread per job: run seeds 0 and 1 side by side on 2 cores. The cells so far ran at commit 470012e;
# to keep one code version in the table, run the sweep from a worktree of it:
#   git worktree add /work/frozen 470012e; export PYTHONPATH=/work/frozen/src
#
#   OUT=runs/fraction bash scripts/fraction_sweep.sh 0 &
#   OUT=runs/fraction bash scripts/fraction_sweep.sh 1 &
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:?usage: fraction_sweep.sh SEED (0 or 1)}
OUT=${OUT:-runs/fraction}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cells=(
    "c300-150k__*__seed$SEED"
    "c300-300k__clean-only__seed$SEED"
    "c300-600k__clean-only__seed$SEED"
    "c300-300k__*__seed$SEED"
    "c300-600k__*__seed$SEED"
    "c300-1200k__clean-only__seed$SEED"
    "c300-1200k__*__seed$SEED"
    "c1000-300k__*__seed$SEED"
    "c1000-1200k__*__seed$SEED"
)
for pattern in "${cells[@]}"; do
    echo "[fraction_sweep] $(date -u +%FT%TZ) seed $SEED: $pattern"
    .venv/bin/ambient bench fraction --out "$OUT" --only "$pattern"
done
echo "[fraction_sweep] $(date -u +%FT%TZ) seed $SEED: done"
