#!/usr/bin/env bash
# The offline demo, end to end on this machine (CPU is enough):
#   1. build the offline BERT-format text encoder (all-MiniLM-L6-v2 weights, TF-Hub layout)
#   2. generate the synthetic captioned-scenes dataset, captions encoded by that module
#   3. train the domain evaluator (feature network of FID/KID/IS, object accuracy)
#   4. pretrain a dual encoder: the R-precision judge
#   5. train XMC-GAN at 64 px for a short run (checkpoints, TensorBoard, sample grids)
#   6. evaluate it (FID, KID, IS, R-precision, object accuracy) and print the table
#   7. export it as a versioned SavedModel and generate an image from a typed caption
#
# Usage: bash scripts/demo.sh ["a caption to draw" ...]
# Sizes can be changed with DEMO_DIR, DEMO_TRAIN_IMAGES, DEMO_GAN_STEPS, DEMO_JUDGE_STEPS,
# DEMO_EVALUATOR_EPOCHS, DEMO_EVAL_SAMPLES (and DEMO_EVALUATOR_MIN_ACCURACY, the held-out
# accuracy the domain evaluator must reach on every attribute, 0.95 by default). Every step is
# skipped or resumed when its output is already there, so the script can be interrupted and run
# again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
export PYTHONUNBUFFERED=1  # progress lines as they come (the tools hide TensorFlow's own logs)

DEMO="${DEMO_DIR:-demo}"
TRAIN_IMAGES="${DEMO_TRAIN_IMAGES:-2000}"
GAN_STEPS="${DEMO_GAN_STEPS:-1200}"
JUDGE_STEPS="${DEMO_JUDGE_STEPS:-400}"
EVALUATOR_EPOCHS="${DEMO_EVALUATOR_EPOCHS:-8}"
EVAL_SAMPLES="${DEMO_EVAL_SAMPLES:-500}"
EVALUATOR_MIN_ACCURACY="${DEMO_EVALUATOR_MIN_ACCURACY:-0.95}"
CAPTION="${1:-a large red circle in the top left}"
if [ "$#" -gt 0 ]; then CAPTIONS=("$@"); else CAPTIONS=("$CAPTION" "a small blue square below a yellow triangle"); fi
TEXT="$DEMO/text_encoder"
DATA="$DEMO/data/synthetic_64"
step() { echo; echo "=== [demo] $* ==="; }

step "1/7 offline text encoder -> $TEXT"
if [ ! -f "$TEXT/encoder/saved_model.pb" ]; then
  $PY -m data_tools.build_text_encoder --output_dir "$TEXT"
else echo "already built"; fi

step "2/7 synthetic captioned scenes -> $DATA"
if [ ! -f "$DATA/dataset_info.json" ]; then
  $PY -m data_tools.synthetic_scenes --output_dir "$DATA" --num_train "$TRAIN_IMAGES" \
    --num_val 500 --image_size 64 --seed 0 --num_shards 4 --max_tokens 24 \
    --text_preprocessor "$TEXT/preprocess" --text_encoder "$TEXT/encoder"
else echo "already written"; fi

step "3/7 domain evaluator -> $DEMO/evaluator"
if [ ! -f "$DEMO/evaluator/evaluator.json" ]; then
  $PY -m xmcgan_tf.train_evaluator --data_dir "$DATA" --output_dir "$DEMO/evaluator" \
    --epochs "$EVALUATOR_EPOCHS" --min_accuracy "$EVALUATOR_MIN_ACCURACY"
else echo "already trained"; fi

step "4/7 R-precision judge (dual encoder) -> $DEMO/judge"
$PY -m xmcgan_tf.pretrain_encoder --gin_file=experiments/synthetic_encoder_damsm_64.gin \
  --gin_param="MODEL_DIR='$DEMO/judge'" --gin_param="DATA_DIR='$DATA'" \
  --gin_param="pretrain_lib.pretrain.num_steps=$JUDGE_STEPS" \
  --gin_param="pretrain_lib.pretrain.steps_per_checkpoint=100" \
  --gin_param="pretrain_lib.pretrain.batch_size=32" \
  --gin_param="pretrain_lib.pretrain.seed=1"

step "5/7 XMC-GAN, 64 px, $GAN_STEPS steps -> $DEMO/xmcgan_64"
$PY -m xmcgan_tf.train --gin_file=experiments/synthetic_xmcgan_64_demo.gin \
  --gin_param="MODEL_DIR='$DEMO/xmcgan_64'" --gin_param="DATA_DIR='$DATA'" \
  --gin_param="train_config.ScheduleConfig.num_steps=$GAN_STEPS"

step "6/7 evaluation"
$PY -m xmcgan_tf.evaluate --model_dir="$DEMO/xmcgan_64" \
  --metrics=fid,kid,is,rprec,objacc,shapes,places --num_samples="$EVAL_SAMPLES" \
  --feature_network=domain --evaluator_dir="$DEMO/evaluator" --judge_dir="$DEMO/judge"

step "7/7 export and generate"
$PY -m xmcgan_tf.export --model_dir="$DEMO/xmcgan_64" --export_dir="$DEMO/export" \
  --skip_if_exported
$PY -m xmcgan_tf.generate --export_dir="$DEMO/export" --output="$DEMO/generated.png" \
  "${CAPTIONS[@]}"
echo
echo "[demo] done: samples in $DEMO/xmcgan_64/samples/, TensorBoard: .venv/bin/tensorboard --logdir $DEMO,"
echo "[demo] generated grid: $DEMO/generated.png"
echo "[demo] type captions in a browser: .venv/bin/xmcgan-serve --model_base_path=$DEMO/export, then open http://127.0.0.1:8501/"
