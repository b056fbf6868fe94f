#!/usr/bin/env bash
# The `biasvar` recipe's cells for one training seed (docs/RESULTS.md section 7, "Bias or variance?"), in the
# order that answers the most first: the three new cells of the 2 x 2 at 150k images (blurred + x0 target,
# oracle + ambient, oracle + x0), the `fraction` recipe's clean-only and fixed cells taken over as they are
# (--reuse runs/fraction: evaluation only), the same at 300k (each continuing its 150k checkpoint), then the
# classifier rows. Each `ambient bench` call resumes where it stopped, so rerunning this script after an
# interruption continues the sweep. One thread per job: run seeds 0 and 1 side by side on 2 cores.
#
#   OUT=runs/biasvar bash scripts/biasvar_sweep.sh 0 &
#   OUT=runs/biasvar bash scripts/biasvar_sweep.sh 1 &
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:?usage: biasvar_sweep.sh SEED (0 or 1)}
OUT=${OUT:-runs/biasvar}
REUSE=${REUSE:-runs/fraction}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
reuse=()
[[ -d "$REUSE/cells" ]] && reuse=(--reuse "$REUSE")
cells=()
for budget in 150k 300k; do
    cells+=(
        "blurred-${budget}__fixed-1.5-x0__seed$SEED"
        "oracle-${budget}__fixed-1.5__seed$SEED"
        "oracle-${budget}__fixed-1.5-x0__seed$SEED"
        "blurred-${budget}__clean-only__seed$SEED"
        "blurred-${budget}__fixed-1.5__seed$SEED"
    )
done
cells+=("blurred-150k__classifier*__seed$SEED" "blurred-300k__classifier*__seed$SEED")
for pattern in "${cells[@]}"; do
    echo "[biasvar_sweep] $(date -u +%FT%TZ) seed $SEED: $pattern"
    .venv/bin/ambient bench biasvar --out "$OUT" --only "$pattern" "${reuse[@]}"
done
echo "[biasvar_sweep] $(date -u +%FT%TZ) seed $SEED: done"
