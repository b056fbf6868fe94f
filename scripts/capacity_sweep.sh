#!/usr/bin/env bash
# The `capacity` recipe's cells for one training seed (docs/RESULTS.md section 7, "A wider network"): clean only
# and fixed sigma_min at each budget in turn (a longer budget continues the shorter cell's checkpoint), then the
# classifier cells. Each `ambient bench` call resumes where it stopped, so rerunning this script after an
# interruption continues the sweep. One thread per job: run seeds 0 and 1 side by side on 2 cores.
#
#   OUT=runs/capacity bash scripts/capacity_sweep.sh 0 &
#   OUT=runs/capacity bash scripts/capacity_sweep.sh 1 &
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:?usage: capacity_sweep.sh SEED (0 or 1)}
OUT=${OUT:-runs/capacity}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cells=()
for budget in 150k 300k 600k; do
    cells+=("wide-${budget}__clean-only__seed$SEED" "wide-${budget}__fixed-1.5__seed$SEED")
done
cells+=("wide-*__classifier__seed$SEED")
for pattern in "${cells[@]}"; do
    echo "[capacity_sweep] $(date -u +%FT%TZ) seed $SEED: $pattern"
    .venv/bin/ambient bench capacity --out "$OUT" --only "$pattern"
done
echo "[capacity_sweep] $(date -u +%FT%TZ) seed $SEED: done"
