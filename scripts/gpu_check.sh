#!/usr/bin/env bash
# The GPU check (issue 17): bf16 LoRA steps on the full-size InternVL3-1B replica (and on a real
# InternVL3-1B-hf folder if FACELM_REAL_INTERNVL names one), tokens/s and peak GPU memory, VerLM
# SmolLM2 training speed, and the merge check; prints one table. One H100-class GPU, <= 10 min,
# no network (everything is built here; nothing is downloaded).
#   bash scripts/gpu_check.sh                       # the table goes to stdout
#   FACELM_REAL_INTERNVL=/models/InternVL3-1B-hf bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec timeout 600 .venv/bin/python benchmarks/gpu_check.py "$@"
