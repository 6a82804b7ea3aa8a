#!/usr/bin/env bash
# Prepared device checks, run from the repository root when a GPU machine is lent:
#   PYTHONPATH=. bash tools/gpu_script.sh [SECTION ...]    (default: every section)
# Results go to $OUT (the device tool's output folder) or /tmp/gpu_out. Each section is one
# function, so other GPU work (e.g. training) can be added beside these without touching them.
# A command may run 10 minutes, a session has 15 of device time (the machine's start included)
# and a call brings back at most 8 files, so run it as two calls on one warm machine:
#   1. run(carry=['data/photos_gpu'], command='bash tools/gpu_script.sh train_bf16',
#          timeout_s=600)   (6 files: the run folder)
#   2. at once: run(command='bash tools/gpu_script.sh view_fusion_rows precision_and_onnx_rows',
#          timeout_s=240)   (4 files), then give_back.
set -euo pipefail
export PYTHONPATH=.
OUT=${OUT:-/tmp/gpu_out}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"

# Training first (the brief: the lent machine's most valuable use). Carry the photographs (call 1
# above) after `stereo-derain photos --cache data/photos_gpu --shrink-from PHOTO_CACHE --max-side
# 512` (about 26 MB). Pools render on every core (about a minute), training runs bf16 for at
# most TRAIN_MINUTES (default 8, so that the call ends inside its 10 minutes) and
# brings back the run folder (weights, optimiser, curves, recipe) under $OUT/gpu_run (the weights
# are a moving average, so a run stopped before its cosine ends is still usable); evaluate
# it here with `stereo-derain eval $FILES/gpu_run/last.safetensors heldout:photos-medium`.
# Recipe from the CPU stages (weights/bandnet.md): 30 % of the pairs rain-free (stages 19 and 20:
# rain-free frames 2-3 dB closer to the input than at 25 %, at no rain cost) and a fine-tuning
# peak learning rate (stage 10 used 3e-4 at 8 pairs per step; 6e-4 at 32, since these weights
# are not trained from scratch), with stage 26's per-pair log losses (held-out rain-free frames
# and light and heavy rain better than with l1 + SSIM on the same batches). Twelve processes
# compose the batches ahead of the step (one core composes a batch of 32 in about 0.4 s, which
# alone would hold the GPU to under 3 steps per second). DEVICE, BATCH, CROP_SCHEDULE, POOL,
# VAL_SAMPLES, THREADS, DATA_WORKERS and POOL_CACHE change the run's size and place, so
# test/test_gpu_script.py runs this very command on the CPU in seconds.
train_bf16() {
    local photos=${PHOTOS:-data/photos_gpu}
    [ -f "$photos/manifest.json" ] || { echo "no photo cache at $photos (carry it)"; return 1; }
    "$PYTHON" -m stereo_derain_ros train --model bandnet --out "$OUT/gpu_run" \
        --init stereo_derain_ros/weights/bandnet.safetensors --model-arg pool_window=128 \
        --steps "${TRAIN_STEPS:-12000}" --batch "${BATCH:-32}" \
        --crop-schedule "${CROP_SCHEDULE:-128x256:3000,192x384}" --lr 6e-4 --warmup 200 \
        --loss log_l1=0.005,log_mse=0.01,ssim=0.2 --ema 0.999 \
        --composition rain_free=0.3 --data synthetic --pool "${POOL:-3000}" \
        --val-samples "${VAL_SAMPLES:-24}" --val-every 1000 --checkpoint-every 500 \
        --data-cache "${POOL_CACHE:-/tmp/pools}" --photos "$photos" --jobs "$(nproc)" \
        --device "${DEVICE:-cuda}" --amp --threads "${THREADS:-4}" \
        --data-workers "${DATA_WORKERS:-12}" \
        --stop-after-minutes "${TRAIN_MINUTES:-8}" --no-progress
}

# torch fp32/fp16/bf16, eager and torch.compile, and onnxruntime CUDA rows for the default model
# at the two sizes of the CPU comparison. Without onnxruntime-gpu on the machine the onnxruntime
# rows fail with "no CUDA provider", which the results then say.
precision_and_onnx_rows() {
    "$PYTHON" -c 'import onnxruntime, torch; print("onnxruntime", onnxruntime.__version__,
onnxruntime.get_available_providers(), "torch", torch.__version__, torch.cuda.get_device_name())' \
        | tee "$OUT/providers.txt"
    "$PYTHON" -m stereo_derain_ros bench models --models bandnet --sizes 640x360,1280x720 \
        --attention banded --device cuda --dtypes fp32,fp16,bf16 --compile both \
        --backends torch,onnxruntime --warmup 3 --repeats 20 --out-dir "$OUT/models_gpu"
}

# The network alone, with the refiner (the default) and with the second-view fusion as well,
# interleaved, with their parts (the refiner and the gate on the GPU in the network's precision,
# fp32 and fp16; SGBM and cue maps on the host): what each step costs on a GPU robot.
# DEVICE, FUSION_SIZES and ROUNDS shrink it for test/test_gpu_script.py.
view_fusion_rows() {
    "$PYTHON" tools/view_fusion_cost.py --device "${DEVICE:-cuda}" --precisions fp32,fp16 \
        --sizes "${FUSION_SIZES:-640x360,1280x720}" --rounds "${ROUNDS:-20}" \
        --out "$OUT/view_fusion_cost.json"
}

sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(train_bf16 view_fusion_rows precision_and_onnx_rows)
for section in "${sections[@]}"; do
    echo "== $section"
    "$section"
done
