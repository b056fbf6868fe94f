#!/usr/bin/env bash
# FID (Inception features, docs/PROTOCOL.md) of a benchmark's finished cells, from the samples they kept: no
# retraining, no resampling. Writes CELL/samples/fid.json (the full `ambient eval` result) beside the cell's own
# metrics, skips cells that already have one, so it resumes. The first call computes the reference statistics
# of the 10,000 test images once (cached). One thread by default, to run beside a sweep.
#   bash scripts/fid_cells.sh runs/fraction 'c300-600k__*'
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: fid_cells.sh BENCH_FOLDER [CELL_GLOB]}
PATTERN=${2:-*}
export AMBIENT_THREADS=${AMBIENT_THREADS:-1}
for cell in "$OUT"/cells/$PATTERN; do
    [ -f "$cell/result.json" ] && [ -f "$cell/samples/samples.npz" ] || continue
    [ -f "$cell/samples/fid.json" ] && continue
    echo "[fid_cells] $(date -u +%FT%TZ) $cell"
    .venv/bin/ambient eval --samples "$cell/samples" --features inception --no-metrics-file \
        --json "$cell/samples/fid.json" > /dev/null
done
echo "[fid_cells] $(date -u +%FT%TZ) done"
