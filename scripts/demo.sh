#!/usr/bin/env bash
# The main job end to end on the built-in characters: draw the dataset, check it, train, paint the
# test maps, train the evaluation judges, evaluate. A GPU gets a 256x256 model; a CPU a 64x64 one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate

# LOW_STEPS > 0: a resolution schedule, LOW_STEPS steps at half the size first (a step there costs about a
# third), whose weights start the full-size run (`--init_from`); LOW_STEPS=0 trains at full size only.
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  SIZE=256 PRESET=base TRAIN=4000 VAL=200 TEST=400 STEPS=${STEPS:-20000} LOW_STEPS=${LOW_STEPS:-0} BATCH=16 GPU=0 PRINT=1000
elif python -c "import sys, torch; from animesis.device import bf16_pays; sys.exit(0 if bf16_pays(torch.device('cpu')) else 1)"; then
  # A CPU whose bf16 instructions measure faster than fp32 trains in bf16 ('auto' precision; on some CPUs
  # with AVX512-BF16 they are slower, and those take the fp32 branch), LOW_STEPS at 32x32 then STEPS at 64x64:
  # about the minutes 1,003 steps take in fp32 at 64x64, which is what 1,500 steps of the seed's losses
  # took (benchmarks/recipes.py, benchmarks/RESULTS.md).
  SIZE=64 PRESET=small TRAIN=1800 VAL=90 TEST=180 STEPS=${STEPS:-1400} LOW_STEPS=${LOW_STEPS:-600} BATCH=8 GPU=-1 PRINT=250
else
  # 1,003 steps of the default recipe take what 1,500 steps of the seed's losses took (benchmarks/recipes.py).
  SIZE=64 PRESET=small TRAIN=1800 VAL=90 TEST=180 STEPS=${STEPS:-1003} LOW_STEPS=${LOW_STEPS:-0} BATCH=8 GPU=-1 PRINT=250
fi
DATA=datasets/Synth$SIZE
NAME=synth_$PRESET

animesis dataset synth --out "$DATA" --characters 9 --size $SIZE --train $TRAIN --val $VAL --test $TEST --seed 0
animesis dataset check "$DATA" --class_num 9

resume() { if [ -f "checkpoints/$1/models/latest.txt" ]; then echo --continue_train; fi; }
TRAIN_FLAGS=(--dataroot "$DATA" --class_dir "$DATA/class.txt" --class_num 9 --dataset_mode custom --preset $PRESET
  --batch_size $BATCH --gpu_ids $GPU --freq_print $PRINT --freq_save_latest $PRINT)
INIT=()
if [ "$LOW_STEPS" -gt 0 ]; then
  python train.py --name "${NAME}_low" "${TRAIN_FLAGS[@]}" --crop_size $((SIZE / 2)) --max_steps "$LOW_STEPS" \
    --freq_fid 0 $(resume "${NAME}_low")
  INIT=(--init_from "checkpoints/${NAME}_low")
fi
python train.py --name $NAME "${TRAIN_FLAGS[@]}" --max_steps "$STEPS" --freq_fid $PRINT --fid_samples $VAL \
  "${INIT[@]}" $(resume "$NAME")

python test.py --name $NAME --dataroot "$DATA" --class_dir "$DATA/class.txt" --class_num 9 --dataset_mode custom \
  --ckpt_iter best --gpu_ids $GPU --batch_size 16

animesis judges --dataroot "$DATA"
animesis eval --name $NAME --ckpt_iter best --dataroot "$DATA" --json "results/$NAME/metrics.json"

LABEL=$(ls "$DATA"/test_label | head -n 1)
animesis generate --checkpoint "checkpoints/$NAME" --iter best --label "$DATA/test_label/$LABEL" \
  --character 0:3:0.5 --n 4 --out "results/$NAME/mix"
echo "done: images in results/$NAME, metrics in results/$NAME/metrics.json, logs in checkpoints/$NAME"
