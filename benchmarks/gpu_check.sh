#!/usr/bin/env bash
# One GPU check of astra's training paths, JSON lines on stdout (≤ 6 minutes on one GPU):
# bf16/fp32 matmul peak, RL-update and SFT-step MFU against it (fp32 / bf16 autocast, with and
# without gradient checkpointing), rollout tokens/s of the hf (KV cache), hf-generate and vllm
# engines (vllm: when it is importable, pip install 'astra[vllm]'; else a vllm_skipped line),
# vllm's start-up and weight-sync seconds, peak memory. GPU_CHECK_VLLM_MEM: vllm's memory share (0.3). What each line means: benchmarks/gpu_check.py.
#
#   benchmarks/gpu_check.sh                  # on a CUDA machine (model shape: --size 1.5b)
#   benchmarks/gpu_check.sh --size 0.5b      # a smaller model
#   benchmarks/gpu_check.sh --cpu-smoke      # tiny sizes on a CPU: shows the code paths run
#
# PYTHON picks the interpreter (default: .venv/bin/python when present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
exec timeout "${GPU_CHECK_TIMEOUT:-360}" "$PY" benchmarks/gpu_check.py "$@"
