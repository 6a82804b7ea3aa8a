#!/usr/bin/env bash
# Prepared device checks, run from the repository root when a GPU machine is lent:
#   PYTHONPATH=. bash tools/gpu_script.sh [SECTION ...]    (default: every section)
# Results go to $OUT (the device tool's output folder) or /tmp/gpu_out. Each section is one
# function, so other GPU work (e.g. training) can be added beside these without touching them.
set -euo pipefail
export PYTHONPATH=.
OUT=${OUT:-/tmp/gpu_out}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"

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

sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(precision_and_onnx_rows)
for section in "${sections[@]}"; do
    echo "== $section"
    "$section"
done
