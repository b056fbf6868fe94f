#!/usr/bin/env bash
# GPU check (issue 18): on a machine with a CUDA GPU and a CUDA build of torch, run the test suite on the GPU
# path and print a throughput table (every step under a timeout: 150 + 6 x 40 + 2 x 45 + 45 s = 8.8 min at
# most): training images/s of fmnist-small at batch 64 / 256 / 1024 without and
# with torch.compile (bf16 autocast, interleaved against float32), noise-annotation calls/s by inference
# path, and sampling images/s (Heun, 18 steps), as one device check; every
# figure goes to $OUT (default gpu_check/) as text. It uses the Python already on the machine (its torch must
# see the GPU); pass PYTHON=... to choose another. Fashion-MNIST is read from $AMBIENT_FASHION_MNIST_DIR
# when it is set (random images otherwise: speed only).
#
#   bash scripts/gpu_check.sh            # OUT=gpu_check, the whole check
#   SKIP_TESTS=1 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export AMBIENT_DEVICE=${AMBIENT_DEVICE:-cuda}
log() { echo "[gpu_check] $(date -u +%T) $*" | tee -a "$OUT/summary.txt"; }

"$PY" - <<'EOF' | tee "$OUT/device.txt" || { echo "[gpu_check] torch cannot use a CUDA GPU here"; exit 1; }
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
EOF

if [ -z "${SKIP_TESTS:-}" ]; then
    log "test suite (default selection, GPU visible)"
    timeout 150 "$PY" -m pytest -q -x -p no:cacheprovider tests > "$OUT/tests.txt" 2>&1
    log "tests: exit $? ($(tail -n 1 "$OUT/tests.txt"))"
fi

for batch in 64 256 1024; do
    images=$((batch * 40))
    for compile in "" "--compile"; do
        log "training, batch $batch ${compile:-eager}"
        timeout 40 "$PY" -m ambient_omni.cli.main benchmark-net --preset fmnist-small --batch "$batch" \
            --images "$images" --val-images 256 --against-fp32 $compile \
            > "$OUT/train-b$batch${compile:+-compile}.txt" 2>&1
        grep -E "img/s|ratio" "$OUT/train-b$batch${compile:+-compile}.txt" | tee -a "$OUT/summary.txt"
    done
done

log "annotation calls/s (fmnist-classifier-small and fmnist-classifier, random init: speed only)"
for preset in fmnist-classifier-small fmnist-classifier; do
    timeout 45 "$PY" -m ambient_omni.cli.main benchmark-annotate --preset "$preset" --images 256 --chunk 64 \
        --batch 2048 > "$OUT/annotate-$preset.txt" 2>&1
    grep -E "calls/s|ratio" "$OUT/annotate-$preset.txt" | tee -a "$OUT/summary.txt"
done

log "sampling 2,000 images (Heun, 18 steps, batch 64), float32 and bf16"
timeout 45 "$PY" -m ambient_omni.cli.main benchmark-net --preset fmnist-small --batch 64 --images 640 \
    --val-images 64 --sample 2000 > "$OUT/sample.txt" 2>&1
grep -E "sampling" "$OUT/sample.txt" | tee -a "$OUT/summary.txt"
log "done: $OUT/summary.txt"
