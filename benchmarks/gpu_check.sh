#!/usr/bin/env bash
# The GPU check: run on a box with NVIDIA GPUs and a CUDA build of torch, from the repository root:
#     bash benchmarks/gpu_check.sh
# It prints the figures of benchmarks/gpu_check.py's cases (side-stream timing, the device named by
# CUDA_VISIBLE_DEVICES, two measure jobs on two GPUs, an engine-shaped test in the sandbox, the demo's torch
# commit through the workflow) and finishes within 9 minutes (each case has its own limits).
# GPU_CHECK_CPU=1 runs it without a GPU, to check the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ "${GPU_CHECK_CPU:-0}" != 1 ]; then
  "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device visible to torch")'
  nvidia-smi --query-gpu=index,name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv
fi
missing=$("$python" -c 'import importlib.util as u; print(" ".join(m for m in ("numpy", "jsonschema", "yaml") if not u.find_spec(m)))')
if [ -n "$missing" ]; then
  echo "gpu_check: this Python lacks $missing (pip install -e . installs them)" >&2
  exit 2
fi
timeout 540 "$python" benchmarks/gpu_check.py
