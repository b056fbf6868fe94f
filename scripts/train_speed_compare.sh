#!/bin/bash
# `ambient train` images/s of two code trees, alternating runs in ABBA order (odd rounds run the code before
# first, even rounds the code now first), fmnist-small, batch 64, 12,800 images, seed 0.
# Usage: scripts/train_speed_compare.sh BEFORE_SRC DATA ANNOTATIONS [ROUNDS]
#   BEFORE_SRC   the src/ folder of the code to compare against (e.g. a `git worktree add /tmp/pre18 b8bf75a^`)
#   DATA         a dataset folder; ANNOTATIONS an annotation file for it (`ambient annotate fixed ...`)
# Prints, per run, the mean logged images/s after the first interval and the final training loss.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,7p "$0"; exit 2; }
BEFORE=$1; DATA=$2; ANN=$3; ROUNDS=${4:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  order="before now"; [ $((round % 2)) -eq 1 ] || order="now before"
  for code in $order; do
    if [ $code = before ]; then PP=$BEFORE; else PP=$ROOT/src; fi
    PYTHONPATH=$PP AMBIENT_THREADS=2 OMP_NUM_THREADS=2 "$ROOT/.venv/bin/ambient" train --data "$DATA" \
      --annotations "$ANN" --out "$OUT/run-$code-$round" --preset fmnist-small --batch 64 --images 12800 \
      --log-every 25 --seed 0 --no-progress > /dev/null
    "$ROOT/.venv/bin/python" - "$OUT/run-$code-$round/log.jsonl" $code "$round" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if '"images_per_s"' in line]
speeds = [r["images_per_s"] for r in rows[1:]]
print(f"{sys.argv[2]:6s} round {sys.argv[3]}: {sum(speeds) / len(speeds):.1f} img/s over {len(speeds)} intervals; "
      f"final training loss {rows[-1]['loss_mean']:.4f}")
PY
  done
done
