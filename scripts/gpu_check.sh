#!/usr/bin/env bash
# GPU check (issue 18): on a machine with a CUDA GPU and a CUDA build of torch, run the test suite on the GPU
# path and print a throughput table (every step under a timeout: 150 + 6 x 40 + 2 x 45 + 45 s = 8.8 min at
# most): training images/s of fmnist-small at batch 64 / 256 / 1024 without and
# with torch.compile (bf16 autocast, interleaved against float32), noise-annotation calls/s by inference
# path, and sampling images/s (Heun, 18 steps), as one device check; every
# figure goes to $OUT (default gpu_check/) as text. It uses the Python already on the machine (its torch must
# see the GPU); pass PYTHON=... to choose another. Fashion-MNIST is read from $AMBIENT_FASHION_MNIST_DIR
# when it is set (random images otherwise: speed only). Exits 1 if any step failed (its file in $OUT says why).
#
#   bash scripts/gpu_check.sh            # OUT=gpu_check, the whole check
#   SKIP_TESTS=1 bash scripts/gpu_check.sh
#   SMOKE=1 bash scripts/gpu_check.sh    # no GPU needed: every step on the CPU at tiny sizes, without the tests
#                                        # and compile, so the commands and their outputs are checked beforehand
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "[gpu_check] $(date -u +%T) $*" | tee -a "$OUT/summary.txt"; }
failed=0
# step NAME FILE PATTERN COMMAND...: run COMMAND into FILE, copy its lines matching PATTERN to the summary, and
# count it as failed when it exits non-zero or prints no such line.
step() {
    local name=$1 file=$2 pattern=$3
    shift 3
    "$@" > "$file" 2>&1
    local rc=$?
    grep -E "$pattern" "$file" | tee -a "$OUT/summary.txt"
    if [ $rc -ne 0 ] || ! grep -qE "$pattern" "$file"; then
        log "FAILED: $name (exit $rc; see $file)"
        failed=$((failed + 1))
    fi
}

if [ -n "${SMOKE:-}" ]; then
    export AMBIENT_DEVICE=cpu
    BATCHES="2"; PER_BATCH=2; VAL=8; COMPILES=""; ANNOTATE="--images 2 --chunk 2 --batch 64 --max-points 32 --paths fp32,bf16"
    SAMPLE="--batch 2 --images 4 --val-images 2 --sample 2"; TIMEOUT_TRAIN=120; TIMEOUT_OTHER=120
    SKIP_TESTS=1
    log "smoke run on the CPU (tiny sizes, no compile): checks the commands, not the speed"
else
    export AMBIENT_DEVICE=${AMBIENT_DEVICE:-cuda}
    BATCHES="64 256 1024"; PER_BATCH=40; VAL=256; COMPILES="--compile"; ANNOTATE="--images 256 --chunk 64 --batch 2048"
    SAMPLE="--batch 64 --images 640 --val-images 64 --sample 2000"; TIMEOUT_TRAIN=40; TIMEOUT_OTHER=45
    "$PY" - <<'EOF' | tee "$OUT/device.txt" || { echo "[gpu_check] torch cannot use a CUDA GPU here"; exit 1; }
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
EOF
fi

if [ -z "${SKIP_TESTS:-}" ]; then
    log "test suite (default selection, GPU visible)"
    timeout 150 "$PY" -m pytest -q -x -p no:cacheprovider tests > "$OUT/tests.txt" 2>&1
    rc=$?
    log "tests: exit $rc ($(tail -n 1 "$OUT/tests.txt"))"
    [ $rc -eq 0 ] || failed=$((failed + 1))
fi

for batch in $BATCHES; do
    for compile in "" $COMPILES; do
        log "training, batch $batch ${compile:-eager}"
        step "training, batch $batch ${compile:-eager}" "$OUT/train-b$batch${compile:+-compile}.txt" "img/s|ratio" \
            timeout "$TIMEOUT_TRAIN" "$PY" -m ambient_omni.cli.main benchmark-net --preset fmnist-small \
            --batch "$batch" --images $((batch * PER_BATCH)) --val-images "$VAL" --against-fp32 $compile
    done
done

log "annotation calls/s (fmnist-classifier-small and fmnist-classifier, random init: speed only)"
for preset in fmnist-classifier-small fmnist-classifier; do
    # shellcheck disable=SC2086 - ANNOTATE holds several options
    step "annotation, $preset" "$OUT/annotate-$preset.txt" "calls/s" \
        timeout "$TIMEOUT_OTHER" "$PY" -m ambient_omni.cli.main benchmark-annotate --preset "$preset" $ANNOTATE
done

log "sampling (Heun, 18 steps), float32 and bf16"
# shellcheck disable=SC2086 - SAMPLE holds several options
step "sampling" "$OUT/sample.txt" "^sampling" \
    timeout "$TIMEOUT_OTHER" "$PY" -m ambient_omni.cli.main benchmark-net --preset fmnist-small $SAMPLE
log "done: $OUT/summary.txt ($failed failed steps)"
[ $failed -eq 0 ]
