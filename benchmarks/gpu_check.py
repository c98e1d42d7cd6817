"""The GPU check of issue 17, run by scripts/gpu_check.sh: one table, ≤ 10 min on one H100, offline.

Rows:
* `vlm-replica`: bf16 LoRA steps (`--preset released`, batch 2 × accum 1) on the InternVL3-1B replica
  (`facelm.models.replica`), real dynamic tiling (photos padded to 2:1: 3 tiles, 768 image tokens);
* `vlm-real`: the same on a real InternVL3-1B-hf folder when $FACELM_REAL_INTERNVL names one;
* `verlm`: `facelm train verlm` with SmolLM2-135M (bf16) on LFW pair records from the evidence teacher;
* `merge`: `facelm train merge` of the replica adapter: reloaded logits vs base + adapter.

    python benchmarks/gpu_check.py [--steps 10] [--replica internvl3-1b] [--allow-cpu]

`--allow-cpu --replica smolvlm-256m --steps 1` smoke-tests the script where there is no GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from replica_recipe import cli, timed_steps, wide_photos  # noqa: E402  (a sibling script)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--photos", type=int, default=8)
    p.add_argument("--replica", default="internvl3-1b")
    p.add_argument("--verlm-steps", type=int, default=20)
    p.add_argument("--work", type=Path, default=ROOT / ".cache" / "gpu-check")
    p.add_argument("--allow-cpu", action="store_true")
    return p.parse_args()


def tokens_per_sample(base: Path, data: Path) -> float:
    """Mean tokens (image tokens included) of the training samples, as the trainer builds them."""
    from facelm.models.hf_processor import load_processor
    from facelm.train.vlm_data import collate, load_examples
    proc = load_processor(str(base))
    examples = load_examples(data)
    counts = [int(collate(proc, [e], 2048)["attention_mask"].sum()) for e in examples]
    return sum(counts) / len(counts)


def vlm_row(name: str, base: Path, data: Path, out: Path, steps: int) -> dict[str, Any]:
    import torch
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = timed_steps()
    precision = "bf16" if cuda else "fp32"
    cli("train", "vlm", "--base", base, "--data", data, "--out", out, "--preset", "released",
        "--max-steps", steps, "--batch-size", 2, "--grad-accum", 1, "--precision", precision,
        "--quiet")
    warm = times[1:] or times      # the first step includes CUDA warm-up
    s_step = sum(warm) / len(warm)
    tok = tokens_per_sample(base, data) * 2
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return {"row": name, "s/step": round(s_step, 3), "tokens/s": round(tok / s_step),
            "peak GiB": round(peak, 2), "note": f"{steps} steps, {precision}, batch 2"}


def verlm_row(work: Path, steps: int) -> dict[str, Any]:
    data = work / "verlm-data"
    if not (data / "train" / "records.jsonl").is_file():
        import subprocess
        script = str(ROOT / "benchmarks" / "verlm_data.py")
        subprocess.run([sys.executable, script, "--out", str(data), "--train-pairs", "64",
                        "--test-pairs", "8", "--train-faces", "0", "--test-faces", "0"], check=True)
    import torch
    t = time.perf_counter()
    out = work / f"verlm-{time.time_ns()}"   # a fresh folder: the trainer refuses to reuse one
    cli("train", "verlm", "--data", data / "train", "--out", out, "--stage", "full", "--lm", "smollm2",
        "--batch-size", 8, "--max-steps", steps, "--sensitivity-pairs", 0,
        "--mixed-precision", "bf16" if torch.cuda.is_available() else "no")
    s = (time.perf_counter() - t) / steps   # includes loading: an upper bound per step
    return {"row": "verlm", "s/step": round(s, 3), "tokens/s": "-", "peak GiB": "-",
            "note": f"{steps} steps incl. load, SmolLM2-135M, batch 8"}


def merge_row(adapter: Path, out: Path) -> dict[str, Any]:
    t = time.perf_counter()
    cli("train", "merge", "--adapter", adapter, "--out", out, "--atol", "1e-4")
    r = json.loads((out / "facelm_export.json").read_text())
    return {"row": "merge", "s/step": "-", "tokens/s": "-", "peak GiB": "-",
            "note": f"max abs(merged - (base+adapter)) = {r['max_abs_diff']:.2e} (target < 1e-4), "
                    f"adapter effect {r['adapter_effect']:.2e}, {time.perf_counter() - t:.0f} s"}


def main() -> int:
    args = parse()
    import torch
    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("no CUDA GPU here (add --allow-cpu for a smoke run)")
    from facelm.models.replica import build_replica
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    base = w / args.replica
    if not (base / "model.safetensors").is_file():
        build_replica(args.replica, base)
    photos = wide_photos(args.photos, w / "photos")
    if not (w / "qa" / "records.jsonl").is_file():
        cli("data", "qa", "--images", photos, "--labels", photos / "labels.csv", "--out", w / "qa",
            "--aspects", "demographics,pose", "--teacher", "evidence", "--quiet")
    run = w / f"run-{time.time_ns()}"   # a fresh folder each time: the trainer refuses reuse
    rows = [vlm_row("vlm-replica", base, w / "qa", run, args.steps)]
    real = os.environ.get("FACELM_REAL_INTERNVL")
    if real:
        real_run = w / f"real-{time.time_ns()}"
        rows.append(vlm_row("vlm-real", Path(real), w / "qa", real_run, args.steps))
    rows.append(verlm_row(w, args.verlm_steps))
    rows.append(merge_row(run, w / f"merged-{time.time_ns()}"))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"\n### facelm GPU check on {device}\n")
    print("| row | s/step | tokens/s | peak GiB | note |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['s/step']} | {r['tokens/s']} | {r['peak GiB']} | {r['note']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
