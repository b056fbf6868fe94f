#!/usr/bin/env bash
# One training seed of a recipe, cell pattern by cell pattern in the order given (default: every cell of the
# seed at once). Each `ambient bench` call resumes where it stopped, so rerunning this script after an
# interruption continues the sweep. One thread per job: run seeds 0 and 1 side by side on 2 cores; stages the
# seeds share (the dataset, an autoencoder, a teacher, a fixed-seed classifier) are made by whichever job gets
# there first while the other waits (bench locks under OUT/locks/).
#
#   OUT=runs/unknown bash scripts/recipe_sweep.sh unknown 0 'pixels-150k__*' 'latent-150k__*' &
#   OUT=runs/unknown bash scripts/recipe_sweep.sh unknown 1 'pixels-150k__*' 'latent-150k__*' &
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${1:?usage: recipe_sweep.sh RECIPE SEED [CELL_PATTERN ...] (patterns without the __seedS suffix)}
SEED=${2:?usage: recipe_sweep.sh RECIPE SEED [CELL_PATTERN ...]}
shift 2
OUT=${OUT:-runs/$RECIPE}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
patterns=("$@")
[[ ${#patterns[@]} -gt 0 ]] || patterns=("*")
for pattern in "${patterns[@]}"; do
    echo "[recipe_sweep] $(date -u +%FT%TZ) $RECIPE seed $SEED: ${pattern}__seed$SEED"
    .venv/bin/ambient bench "$RECIPE" --out "$OUT" --only "${pattern}__seed$SEED"
done
echo "[recipe_sweep] $(date -u +%FT%TZ) $RECIPE seed $SEED: done"
