#!/usr/bin/env bash
# Train the model that ships inside the package (src/animesis/shipped/) and write its model card.
# The exact command the shipped weights came from; see src/animesis/shipped/README.md for its metrics.
#   bash scripts/train_shipped.sh            # STEPS=... SIZE=... PRESET=... override the defaults
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

SIZE=${SIZE:-128}
PRESET=${PRESET:-small}
BATCH=${BATCH:-8}
# Stage 1 (a resolution schedule): the CPU demo's 64x64 run, whose weights start the SIZE run. The
# networks are fully convolutional, so they carry over. In fp32, 1,003 steps of `paired` take the time
# of the seed's losses' 1,500 (the demo's budget), and 850 at 128x128 took 39.4 minutes. A CPU whose
# bf16 instructions measure faster than fp32 trains in bf16 ('auto' precision) and takes more steps: 1,614 at 64x64 in the
# demo's minutes (benchmarks/RESULTS.md), and 1,446 at 128x128, which took 41 minutes there.
if python -c "import sys, torch; from animesis.device import bf16_pays; sys.exit(0 if bf16_pays(torch.device('cpu')) else 1)"; then
  BASE_STEPS=${BASE_STEPS:-1614} STEPS=${STEPS:-1446}
else
  BASE_STEPS=${BASE_STEPS:-1003} STEPS=${STEPS:-850}
fi
BASE=${BASE:-checkpoints/shipped_base64}
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then GPU=0; else GPU=-1; fi
DATA=datasets/Synth$SIZE
NAME=shipped_$SIZE
# The default recipe (benchmarks/RESULTS.md); RECIPE=oasis BASE_STEPS=1500 STEPS=700 made the model before.
RECIPE=${RECIPE:-paired}
COMMON=(--preset "$PRESET" --batch_size "$BATCH" --seed 42 --gpu_ids "$GPU" --freq_fid 0 --no_progress --recipe "$RECIPE")

synth() { [ -f "datasets/Synth$1/class.txt" ] || animesis dataset synth --out "datasets/Synth$1" --characters 9 \
  --size "$1" --train 1800 --val 90 --test 180 --seed 0; }
resume() { if [ -f "$1/models/latest.txt" ]; then echo --continue_train; fi; }

start=$(date +%s)
synth 64
animesis train --name "$(basename "$BASE")" --checkpoints_dir "$(dirname "$BASE")" --dataroot datasets/Synth64 \
  --crop_size 64 --max_steps "$BASE_STEPS" --freq_print 300 --freq_save_latest 300 "${COMMON[@]}" $(resume "$BASE")
synth "$SIZE"
animesis train --name "$NAME" --dataroot "$DATA" --crop_size "$SIZE" --max_steps "$STEPS" --freq_print 100 \
  --freq_save_latest 100 --init_from "$BASE" "${COMMON[@]}" $(resume "checkpoints/$NAME")
echo "training wall-clock: $(( $(date +%s) - start )) s"

animesis judges --dataroot "$DATA"
animesis eval --name "$NAME" --ckpt_iter latest --dataroot "$DATA" --json "results/$NAME/metrics.json"
python scripts/ship_model.py --run "checkpoints/$NAME" --metrics "results/$NAME/metrics.json" \
  --command "bash scripts/train_shipped.sh (SIZE=$SIZE PRESET=$PRESET STEPS=$STEPS BATCH=$BATCH BASE_STEPS=$BASE_STEPS RECIPE=$RECIPE)" \
  --out src/animesis/shipped --notes scripts/shipped_limits.md
