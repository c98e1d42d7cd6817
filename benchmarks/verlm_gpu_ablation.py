"""The VerLM ablation with SmolLM2 at the papers' scale (k=40 prefix tokens, 4-layer mappers and
cross-projection, as ADIFF) on one GPU, offline, in under 10 minutes: one table to put beside the
CPU ablation (tiny decoder, k=8) in docs/benchmarks/verlm.md.

    bash scripts/verlm_gpu_ablation.sh                   # one H100-class GPU, <= 10 min
    python benchmarks/verlm_gpu_ablation.py --allow-cpu --steps 2 --pairs 4 --lm TINY_LM_DIR \\
        --prefix-len 4 --layers 1                        # a smoke test of the plumbing on CPU

Every variant trains LoRA (r=16) on SmolLM2-135M in bf16 for --steps optimizer steps per stage,
then is judged like the CPU runs (benchmarks/verlm_ablation.evaluate: verdict agreement, claims
supported, invented numbers, distinct texts, swap check, NLG metrics) on --pairs held-out
view1_test pairs. Records come from benchmarks/verlm_data.py (built on the spot if missing).
Writes WORK/SLUG/eval.json per variant and prints the table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from verlm_ablation import Setup, evaluate  # noqa: E402  (a sibling script)

CROSS = ["--fusion", "cross", "--separator", "eos"]
# slug: (stage, flags): the paper's three claims, vision with number tokens, and grounded
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "cross-eos-staged": ("both", CROSS),
    "concat-eos-staged": ("both", ["--fusion", "concat", "--separator", "eos"]),
    "cross-nosep-staged": ("both", ["--fusion", "cross", "--separator", "none"]),
    "cross-eos-e2e": ("full", CROSS),
    "cross-eos-numbers": ("full", CROSS + ["--number-tokens", "--number-loss-weight", "5",
                                           "--answer-dropout", "0.1"]),
    "cross-eos-grounded": ("both", CROSS + ["--mode", "grounded"]),
}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150, help="optimizer steps per stage")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--pairs", type=int, default=300, help="held-out view1_test pairs judged")
    p.add_argument("--lm", default="smollm2")
    p.add_argument("--prefix-len", type=int, default=40)
    p.add_argument("--layers", type=int, default=4, help="mapper and cross-projection layers")
    p.add_argument("--only", default="", help="comma-separated slugs (default: all)")
    p.add_argument("--data", type=Path, default=ROOT / ".cache" / "verlm-v2")
    p.add_argument("--work", type=Path, default=ROOT / ".cache" / "verlm-gpu")
    p.add_argument("--allow-cpu", action="store_true")
    return p.parse_args()


def ensure_data(data: Path) -> None:
    if not (data / "train" / "records.jsonl").is_file():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "verlm_data.py"), "--out", str(data),
                        "--train-pairs", "0", "--extra-pairs", "2000", "--test-pairs", "400",
                        "--train-faces", "0", "--test-faces", "0"], check=True)


def train(slug: str, out: Path, args: argparse.Namespace, cuda: bool) -> float:
    stage, flags = VARIANTS[slug]
    cmd = [sys.executable, "-m", "facelm.cli", "train", "verlm", "--data", str(args.data / "train"),
           "--out", str(out), "--stage", stage, "--lm", args.lm, "--lm-train", "lora",
           "--prefix-len", str(args.prefix_len), "--mapper-layers", str(args.layers),
           "--cross-layers", str(args.layers), "--batch-size", str(args.batch_size),
           "--max-steps", str(args.steps), "--max-answer-tokens", "160", "--lr", "1e-3",
           "--lr-full", "3e-4", "--kinds", "pair", "--tiers", "concise", "--sensitivity-pairs", "0",
           "--mixed-precision", "bf16" if cuda else "no", "--seed", "0", *flags]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t


def row(slug: str, r: dict) -> str:
    s = r["summary"]
    return (f"| {slug} | {r['train_s']:.0f} | {100 * s['verdict_agreement']:.1f} | "
            f"{100 * s['support_rate']:.1f} [{100 * s['ci']['support_rate'][0]:.1f}, "
            f"{100 * s['ci']['support_rate'][1]:.1f}] | {100 * s['distinct_texts']:.1f} | "
            f"{s['invented_numbers'] / max(s['pairs'], 1):.2f} | {r['nlg'].get('BLEU-4', 0):.3f} | "
            f"{r['generate_s_per_pair']} |")


def main() -> int:
    args = parse()
    import torch
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        raise SystemExit("no CUDA GPU here (add --allow-cpu for a smoke run)")
    from facelm.data.schema import read_records
    ensure_data(args.data)
    recs = [r for r in read_records(args.data / "test") if r.kind == "pair" and r.tier == "concise"]
    recs = recs[: args.pairs]
    setup = Setup(answer_tokens=160, test_pairs=len(recs), swap_pairs=min(40, len(recs)))
    results = {}
    for slug in [s for s in VARIANTS if not args.only or s in args.only.split(",")]:
        out = args.work / f"{slug}-{time.time_ns()}"   # a fresh folder: the trainer refuses reuse
        train_s = train(slug, out, args, cuda)
        results[slug] = {"train_s": train_s, **evaluate(out, recs, setup)}
        (out / "eval.json").write_text(json.dumps(results[slug]))
        print(slug, json.dumps({k: v for k, v in results[slug]["summary"].items() if k != "groups"}),
              file=sys.stderr, flush=True)
    device = torch.cuda.get_device_name(0) if cuda else "CPU (smoke run)"
    print(f"\n### VerLM ablation, {args.lm}, k={args.prefix_len}, {args.layers}-layer mappers/"
          f"cross-projection, {args.steps} steps per stage, {len(recs)} view1_test pairs, {device}\n")
    print("| variant | train s | verdict agrees % | claims supported % [95 % CI] | distinct texts % | "
          "invented numbers / text | BLEU-4 | s / pair |\n|---|---|---|---|---|---|---|---|")
    for slug, r in results.items():
        print(row(slug, r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
