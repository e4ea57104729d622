#!/usr/bin/env bash
# The GPU benchmark on the device machine: python -m benchmarks.gpu (its docstring says what
# is timed), run from the repository root; $OUT receives gpu.json and gpu.log.
#
#   benchmarks/gpu_device.sh [more benchmarks.gpu flags, which win over these]
#
# That machine has JAX (CUDA), PyTorch and timm, but neither keras nor TensorFlow. Carry
# keras and what it needs that the image lacks (on the image of 2026-11: optree and namex)
# as wheels in .whl/, fetched here for its Python 3.12 and carried with the call:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl keras==3.15.1 optree namex
set -euo pipefail
OUT=${OUT:-/tmp/bit_keras_gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi -L || echo "nvidia-smi -L failed"; } 2>&1 | tee "$OUT/gpu.log"
PYTHONUNBUFFERED=1 KERAS_BACKEND=jax python3 -m benchmarks.gpu --require_gpu --peers=yes \
  --output="$OUT/gpu.json" "$@" 2>&1 | tee -a "$OUT/gpu.log"
