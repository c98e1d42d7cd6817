"""The VerLM ablation with confidence, on CPU: cross-projection vs concat, separator vs none, staged
vs end-to-end, vision vs grounded; 3 seeds each, evaluated on >= 300 held-out LFW View 1 test pairs
(identities disjoint from training) with bootstrap 95 % intervals; plus seed-0 diagnostics of what
made the LM read its prefix (DIAGNOSTICS: the first recipe with answer dropout or the contrastive
loss).

    python benchmarks/verlm_data.py --out .cache/verlm-v2 --train-pairs 0 --extra-pairs 2000 \\
        --test-pairs 400 --train-faces 400 --test-faces 40          # records (~10 min)
    python benchmarks/verlm_ablation.py [--only SLUGS] [--seeds 0,1,2]  # train + evaluate
    python benchmarks/verlm_ablation.py --only oldrecipe-droponly,oldrecipe-contrast --seeds 0
    python benchmarks/verlm_ablation.py --report-only                 # docs/benchmarks/verlm.md

The decoder is the tiny one (4 layers, d=256, BPE on the train texts, text-pretrained here): on this
2-core CPU one SmolLM2 step costs ~100x a tiny step (benchmarks/verlm_profile.py), so SmolLM2 is
trained once, as the shipped model (scripts/train_verlm_small.sh). Each run writes its per-pair
scores to .cache/verlm-runs/v2/SLUG/sSEED/eval.json; the report reads them all.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".cache" / "verlm-v2"
RUNS = REPO / ".cache" / "verlm-runs" / "v2"
TINY_LM = RUNS / "tiny-lm"
DOCS = REPO / "docs" / "benchmarks"


@dataclass(frozen=True)
class Setup:
    steps: int = 400               # optimizer steps per run (staged: half per stage)
    batch_size: int = 8
    answer_tokens: int = 80        # whole concise answers with the tiny tokenizer
    pretrain_steps: int = 200
    lr: float = 3e-3               # the recipe that makes the LM read its prefix (see the report)
    lr_full: float = 1e-3
    lm_train: str = "full"
    test_pairs: int = 300
    swap_pairs: int = 40


BASE = ["--fusion", "cross", "--separator", "eos"]
# the first recipe (the trainer's defaults of the earlier ablation): LoRA, lr 1e-3 / 5e-4
OLD = ["--lr", "1e-3", "--lr-full", "5e-4", "--lm-train", "lora"]
LONG = ["--max-steps", "1500", "--number-loss-weight", "5", "--answer-dropout", "0.1"]
# slug: (label, stage, flags); the flags override the Setup's recipe (later flags win)
VARIANTS: dict[str, tuple[str, str, list[str]]] = {
    "cross-eos-staged": ("cross+eos, staged (vision)", "both", BASE),
    "concat-eos-staged": ("concat+eos, staged", "both", ["--fusion", "concat", "--separator", "eos"]),
    "cross-nosep-staged": ("cross, no separator, staged", "both", ["--fusion", "cross", "--separator", "none"]),
    "cross-eos-e2e": ("cross+eos, end-to-end only", "full", BASE),
    "cross-eos-staged-grounded": ("cross+eos, staged, grounded", "both", BASE + ["--mode", "grounded"]),
    # vision mode that reads the pair's numbers: number tokens, digit tokens weighted 5x, 1,500
    # end-to-end steps; and the same recipe without number tokens, the control
    "cross-eos-numbers-long": ("vision + number tokens, 1,500 steps e2e, digit weight 5", "full",
                               BASE + LONG + ["--number-tokens"]),
    "cross-eos-vision-long": ("vision, same recipe without number tokens (control)", "full",
                              BASE + LONG),
}
# seed-0 diagnostics of what made the LM read its prefix (run with --only SLUG --seeds 0)
DIAGNOSTICS: dict[str, tuple[str, str, list[str]]] = {
    "oldrecipe-droponly": ("first recipe + answer dropout 0.25", "both", BASE + OLD + ["--answer-dropout", "0.25"]),
    "oldrecipe-contrast": ("first recipe + contrast 1.0 + dropout 0.1", "both",
                           BASE + OLD + ["--contrast-weight", "1", "--answer-dropout", "0.1"]),
    "cross-eos-staged-numbers": ("number tokens at the ablation's 400 staged steps", "both",
                                 BASE + ["--number-tokens"]),
}


def run_dir(slug: str, seed: int) -> Path:
    return RUNS / slug / f"s{seed}"


def train_command(slug: str, seed: int, s: Setup) -> list[str]:
    _, stage, flags = {**VARIANTS, **DIAGNOSTICS}[slug]
    steps = s.steps // 2 if stage == "both" else s.steps
    return [sys.executable, "-m", "facelm.cli", "train", "verlm", "--data", str(DATA / "train"),
            "--out", str(run_dir(slug, seed)), "--stage", stage, "--lm", str(TINY_LM),
            "--max-steps", str(steps), "--batch-size", str(s.batch_size),
            "--max-answer-tokens", str(s.answer_tokens), "--lr", str(s.lr), "--lr-full", str(s.lr_full),
            "--lm-train", s.lm_train, "--kinds", "pair", "--tiers", "concise",
            "--mixed-precision", "no", "--seed", str(seed), *flags]  # later flags win


def tiny_lm(s: Setup) -> dict:
    """Build and text-pretrain the small decoder once (every run starts from it)."""
    from facelm.data.schema import read_records
    from facelm.models.verlm.tiny import build_tiny_lm, pretrain_text
    if (TINY_LM / "pretrain.json").is_file():
        return json.loads((TINY_LM / "pretrain.json").read_text())
    records = [r for r in read_records(DATA / "train") if r.kind == "pair" and r.tier == "concise"]
    texts = [r.answer for r in records]
    t = time.time()
    build_tiny_lm(texts + [r.question for r in records], TINY_LM, vocab_size=2048, hidden=256,
                  layers=4, heads=8, seed=0)
    losses = pretrain_text(TINY_LM, texts, steps=s.pretrain_steps, max_len=s.answer_tokens, seed=0)
    info = {"pretrain_s": round(time.time() - t, 1), "loss_first_last": [round(losses[0], 3),
                                                                         round(losses[-1], 3)]}
    (TINY_LM / "pretrain.json").write_text(json.dumps(info))
    return info


def test_pairs(n: int) -> list:
    from facelm.data.schema import read_records
    return [r for r in read_records(DATA / "test") if r.kind == "pair" and r.tier == "concise"][:n]


def evaluate(ckpt: Path, recs: list, s: Setup) -> dict:
    """Generate for the held-out pairs; per-pair audit, NLG metrics, swap check."""
    from facelm.eval.explanations import score_pair, swap_sensitivity, with_intervals
    from facelm.eval.metrics import compute_metrics
    from facelm.models import load_model
    vlm = load_model(str(ckpt), batch_size=32)
    t = time.time()
    preds = vlm.generate_batch([(r.images, r.question) for r in recs], max_new_tokens=s.answer_tokens)
    gen_s = time.time() - t
    analyses = [[vlm.extractor.analysis(p) for p in r.images] for r in recs]
    scores = [score_pair(p, a, same=r.same) for p, a, r in zip(preds, analyses, recs)]
    k = s.swap_pairs
    swapped = vlm.generate_batch([([r.images[1], r.images[0]], r.question) for r in recs[:k]],
                                 max_new_tokens=s.answer_tokens)
    tok = vlm.model.tokenizer
    refs = {str(i): [tok.decode(tok(r.answer, add_special_tokens=False).input_ids[: s.answer_tokens]).strip()]
            for i, r in enumerate(recs)}
    nlg = compute_metrics({str(i): p for i, p in enumerate(preds)}, refs)
    return {"generate_s_per_pair": round(gen_s / len(recs), 3), "summary": with_intervals(scores),
            "nlg": {k2: round(v, 4) for k2, v in nlg.items()},
            "swap": swap_sensitivity(preds[:k], swapped),
            "pairs": [sc.to_dict() for sc in scores]}


def template_reference(recs: list) -> None:
    """The template explainer's own texts for the same pairs: the reference row."""
    from facelm.eval.explanations import score_pair, with_intervals
    from facelm.models.verlm.features import FaceFeatureExtractor
    out = RUNS / "template" / "s0" / "eval.json"
    if out.is_file():
        return
    ext = FaceFeatureExtractor()
    scores = [score_pair(r.answer, [ext.analysis(p) for p in r.images], same=r.same) for r in recs]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": with_intervals(scores), "pairs": [x.to_dict() for x in scores]}))


def _trained(ckpt: Path, slug: str) -> bool:
    """Has every stage of this variant finished in `ckpt`?"""
    stage = {**VARIANTS, **DIAGNOSTICS}[slug][1]
    path = ckpt / "train_state.json"
    return path.is_file() and json.loads(path.read_text())["done"] == (
        ["mapper", "full"] if stage == "both" else [stage])


def run(slug: str, seed: int, s: Setup, recs: list, fresh: bool) -> dict:
    ckpt = run_dir(slug, seed)
    if fresh or not (ckpt / "eval.json").is_file():
        train_s = None   # a run trained earlier (e.g. in another process) is only evaluated
        if fresh or not _trained(ckpt, slug):
            shutil.rmtree(ckpt, ignore_errors=True)
            t = time.time()
            subprocess.run(train_command(slug, seed, s), check=True, cwd=REPO)
            train_s = round(time.time() - t, 1)
        state = json.loads((ckpt / "train_state.json").read_text())
        result = {"train_s": train_s, "steps": len(state["losses"]),
                  "loss_first_last": [round(state["losses"][0], 3), round(state["losses"][-1], 3)],
                  **evaluate(ckpt, recs, s)}
        (ckpt / "eval.json").write_text(json.dumps(result))
    return json.loads((ckpt / "eval.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated variant slugs (default: all)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--fresh", action="store_true", help="retrain runs that already exist")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from verlm_report import write_report
    s = Setup()
    if not args.report_only:
        import torch
        torch.set_num_threads(1)  # two runs share the 2-core CPU with the SmolLM2 job
        os.environ["OMP_NUM_THREADS"] = "1"
        RUNS.mkdir(parents=True, exist_ok=True)
        tiny_lm(s)
        recs = test_pairs(s.test_pairs)
        template_reference(recs)
        for seed in [int(x) for x in args.seeds.split(",")]:
            for slug in {**VARIANTS, **DIAGNOSTICS}:
                if (args.only and slug not in args.only.split(",")) or (not args.only and slug in DIAGNOSTICS):
                    continue
                r = run(slug, seed, s, recs, args.fresh)
                print(slug, seed, json.dumps({k: v for k, v in r["summary"].items() if k != "groups"}),
                      file=sys.stderr, flush=True)
    write_report(RUNS, {**VARIANTS, **DIAGNOSTICS}, asdict(s), DOCS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
