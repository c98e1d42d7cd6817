"""The VerLM ablation, in small, on CPU: cross-projection vs concat, separator vs none, staged vs
end-to-end only, and the untrained model, trained on evidence-teacher records of real photos and
evaluated on held-out identities (LFW View 1 test pairs; held-out UTKFace photos for QA).

    python benchmarks/verlm_data.py                   # records -> .cache/verlm-ablation/{train,test}
    python benchmarks/verlm_ablation.py [--only SLUGS]  # train the variants, evaluate, write the report

Every variant gets the same optimizer-step budget (staged: half per stage). Writes
docs/benchmarks/verlm.md (table, commands, checkpoint sizes) and docs/benchmarks/verlm_ablation.json.
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

from facelm.models.verlm.config import VerLMConfig
from facelm.train.verlm import TrainConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".cache" / "verlm-ablation"
RUNS = REPO / ".cache" / "verlm-runs"
DOCS = REPO / "docs" / "benchmarks"
QA_ASPECTS = ("demographics", "expression", "pose")


@dataclass(frozen=True)
class Setup:
    # main ablation: a small decoder (4 layers, d=256, BPE on the train texts) pretrained here on
    # the train-split answers (text only); SmolLM2 at 17 s/step on this shared CPU allows one run
    tiny_steps: int = 150          # optimizer steps per variant (staged: half per stage)
    tiny_answer_tokens: int = 80   # whole concise answers with the tiny tokenizer
    tiny_pretrain_steps: int = 300
    smol_steps: int = 40
    smol_answer_tokens: int = 48
    # the model's and trainer's defaults, recorded here because the report states them
    batch_size: int = TrainConfig.batch_size
    prefix_len: int = VerLMConfig.prefix_len
    mapper_layers: int = VerLMConfig.mapper_layers
    cross_layers: int = VerLMConfig.cross_layers
    lr: float = TrainConfig.lr
    lr_full: float = 5e-4          # not the trainer's default
    test_pairs: int = 40
    test_qa_per_aspect: int = 8
    seed: int = 0
    scale: int = 1                 # multiplies tiny_steps (--scale); own folder and JSON


TINY_LM = RUNS / "tiny-lm"
VARIANTS: dict[str, tuple[str, str, list[str]]] = {
    # name: (lm, stage, extra CLI flags); "untrained" rows are evaluated without training
    "tiny: untrained": ("tiny", "none", []),
    "tiny: cross+eos, staged": ("tiny", "both", ["--fusion", "cross", "--separator", "eos"]),
    "tiny: concat+eos, staged": ("tiny", "both", ["--fusion", "concat", "--separator", "eos"]),
    "tiny: cross, no separator, staged": ("tiny", "both", ["--fusion", "cross", "--separator", "none"]),
    "tiny: cross+eos, end-to-end only": ("tiny", "full", ["--fusion", "cross", "--separator", "eos"]),
    "SmolLM2: untrained": ("smollm2", "none", []),
    "SmolLM2: cross+eos, staged": ("smollm2", "both", ["--fusion", "cross", "--separator", "eos"]),
}
# Beyond the paper's ablation (`--extra`): does the verdict follow the score with a longer budget,
# or when the calibrated result is also given as text in the prompt?
EXTRA: dict[str, tuple[str, str, list[str]]] = {
    "tiny: cross+eos, staged, 4x steps": ("tiny", "both", ["--fusion", "cross", "--separator", "eos"]),
    "tiny: cross+eos, staged, score in prompt": (
        "tiny", "both", ["--fusion", "cross", "--separator", "eos", "--score-in-prompt",
                         "--max-prompt-tokens", "96"]),
    "tiny: cross+eos, staged, pixel encoder": (
        "tiny", "both", ["--fusion", "cross", "--separator", "eos", "--pixel-encoder"]),
}
VARIANTS.update(EXTRA)
STEP_SCALE = {"tiny: cross+eos, staged, 4x steps": 4}


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name).split()).lower()


def _vdir(name: str, s: Setup) -> Path:
    """Seed 0's checkpoints directly under RUNS; repeats with other seeds in RUNS/seedN."""
    root = RUNS if s.seed == 0 else RUNS / f"seed{s.seed}"
    return (root if s.scale == 1 else root / f"x{s.scale}") / _slug(name)


def _budget(name: str, s: Setup) -> tuple[str, int, int]:
    """(lm spec, steps for the whole variant, answer-token cap)."""
    if VARIANTS[name][0] == "tiny":
        return str(TINY_LM), s.tiny_steps * s.scale * STEP_SCALE.get(name, 1), s.tiny_answer_tokens
    return "smollm2", s.smol_steps, s.smol_answer_tokens


def train_command(name: str, s: Setup) -> list[str]:
    _, stage, flags = VARIANTS[name]
    lm, steps, cap = _budget(name, s)
    steps = steps // 2 if stage == "both" else steps
    return [sys.executable, "-m", "facelm.cli", "train", "verlm", "--data", str(DATA / "train"),
            "--out", str(_vdir(name, s)), "--stage", stage, *flags, "--lm", lm,
            "--prefix-len", str(s.prefix_len), "--mapper-layers", str(s.mapper_layers),
            "--cross-layers", str(s.cross_layers), "--max-steps", str(steps),
            "--batch-size", str(s.batch_size), "--max-answer-tokens", str(cap), "--lr", str(s.lr),
            "--lr-full", str(s.lr_full), "--tiers", "concise", "--aspects", ",".join(QA_ASPECTS),
            "--seed", str(s.seed)]


def tiny_lm(s: Setup) -> dict:
    """Build and text-pretrain the small decoder once (the LM every tiny variant starts from)."""
    from facelm.data.schema import read_records
    from facelm.models.verlm.tiny import build_tiny_lm, pretrain_text
    if (TINY_LM / "pretrain.json").is_file():
        return json.loads((TINY_LM / "pretrain.json").read_text())
    records = list(read_records(DATA / "train"))
    texts = [r.answer for r in records]
    questions = [r.question for r in records]
    t = time.time()
    build_tiny_lm(texts + questions, TINY_LM, vocab_size=2048, hidden=256, layers=4, heads=8, seed=s.seed)
    losses = pretrain_text(TINY_LM, texts, steps=s.tiny_pretrain_steps, seed=s.seed)
    info = {"pretrain_s": round(time.time() - t, 1), "loss_first_last": [round(losses[0], 3),
                                                                         round(losses[-1], 3)]}
    (TINY_LM / "pretrain.json").write_text(json.dumps(info))
    return info


def untrained_checkpoint(name: str, s: Setup) -> Path:
    """The cross+eos model with its prefix modules at their seeded initialisation."""
    from facelm.models.verlm.checkpoint import save_checkpoint
    from facelm.models.verlm.lm import load_lm
    from facelm.models.verlm.model import VerLM
    from facelm.train.common import set_seed
    set_seed(s.seed)
    cfg = VerLMConfig(lm=_budget(name, s)[0], prefix_len=s.prefix_len, mapper_layers=s.mapper_layers,
                      cross_layers=s.cross_layers)
    lm, tok = load_lm(cfg.lm, cfg.lm_layers)
    return save_checkpoint(VerLM(cfg, lm, tok), _vdir(name, s))


def test_records(s: Setup) -> list:
    from facelm.data.schema import read_records
    recs = list(read_records(DATA / "test"))
    pairs = [r for r in recs if r.kind == "pair" and r.tier == "concise"][: s.test_pairs]
    qa = []
    for aspect in QA_ASPECTS:
        qa += [r for r in recs if r.kind == "qa" and r.aspect == aspect][: s.test_qa_per_aspect]
    return pairs + qa


def truncate(tok, text: str, n: int) -> str:
    """The reference as the model was trained to write it: its first n tokens."""
    return tok.decode(tok(text, add_special_tokens=False).input_ids[:n]).strip()


def evaluate(ckpt: Path, recs: list, cap: int) -> dict:
    from facelm.eval.metrics import compute_metrics
    from facelm.models import load_model
    from facelm.models.verlm.verdict import agrees, stated_verdict
    from facelm.verify import compare_analyses
    vlm = load_model(str(ckpt), batch_size=16)
    t = time.time()
    preds = vlm.generate_batch([(r.images, r.question) for r in recs], max_new_tokens=cap)
    gen_s = time.time() - t
    tok = vlm.model.tokenizer
    out: dict = {"generate_s": round(gen_s, 1), "examples": {}}
    for subset, keep in (("pairs", lambda r: r.kind == "pair"), ("qa", lambda r: r.kind == "qa")):
        ids = [i for i, r in enumerate(recs) if keep(r)]
        m = compute_metrics({str(i): preds[i] for i in ids},
                            {str(i): [truncate(tok, recs[i].answer, cap)] for i in ids})
        out[subset] = {k: round(v, 4) for k, v in m.items()}
    agree = stated = truth = 0
    pair_ids = [i for i, r in enumerate(recs) if r.kind == "pair"]
    for i in pair_ids:
        a, b = (vlm.extractor.analysis(p) for p in recs[i].images)
        same = compare_analyses(a, b).same
        agree += agrees(preds[i], same)
        v = stated_verdict(preds[i])
        stated += v is not None
        truth += v is recs[i].same
    n = max(1, len(pair_ids))
    out["verdict"] = {"agreement": round(agree / n, 3), "stated": round(stated / n, 3),
                      "ground_truth_accuracy": round(truth / n, 3)}
    out["examples"] = {"pair": preds[pair_ids[0]] if pair_ids else "", "qa": preds[-1]}
    return out


def size_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 1)


def run_variant(name: str, s: Setup, recs: list, fresh: bool) -> dict:
    ckpt = _vdir(name, s)
    row: dict = {}
    if VARIANTS[name][1] == "none":
        untrained_checkpoint(name, s)
    else:
        cmd = train_command(name, s)
        row["command"] = " ".join(["facelm", *cmd[3:]]).replace(str(REPO) + "/", "")
        if fresh or not (ckpt / "train_state.json").is_file():
            shutil.rmtree(ckpt, ignore_errors=True)
            t = time.time()
            subprocess.run(cmd, check=True, cwd=REPO)
            row["train_s"] = round(time.time() - t, 1)
        state = json.loads((ckpt / "train_state.json").read_text())
        row["steps"] = len(state["losses"])
        row["loss_first_last"] = [round(state["losses"][0], 3), round(state["losses"][-1], 3)]
    row.update(evaluate(ckpt, recs, _budget(name, s)[2]))
    row["checkpoint_mb"] = size_mb(ckpt)
    row["checkpoint_files"] = sorted(f.name for f in ckpt.iterdir())
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated variant slugs (default: all)")
    ap.add_argument("--fresh", action="store_true", help="retrain variants that already exist")
    ap.add_argument("--report-only", action="store_true", help="rewrite verlm.md from the JSON")
    ap.add_argument("--seed", type=int, default=0, help="repeat with another seed (own folder and JSON)")
    ap.add_argument("--extra", action="store_true", help="run the variants beyond the paper's (own JSON)")
    ap.add_argument("--scale", type=int, default=1, help="x tiny steps; JSON verlm_ablation_xN-ONLY.json")
    args = ap.parse_args(argv)
    from verlm_report import groups, write_report
    out_json = DOCS / ("verlm_ablation_extra.json" if args.extra else "verlm_ablation.json" if args.seed == 0
                       else f"verlm_ablation_seed{args.seed}.json")
    if args.scale != 1:  # parallel runs of single variants each keep their own file
        seed = f"s{args.seed}" if args.seed else ""
        out_json = DOCS / f"verlm_ablation_x{args.scale}{seed}-{args.only or 'all'}.json"
    if args.report_only:
        main_results = json.loads((DOCS / "verlm_ablation.json").read_text())
        write_report(main_results, DOCS / "verlm.md", more=groups(DOCS, main_results))
        return 0
    import torch
    torch.set_num_threads(1)  # on a shared 2-core CPU one thread is ~6x faster than two (measured)
    os.environ["OMP_NUM_THREADS"] = "1"  # and for the training subprocesses
    s = Setup(seed=args.seed, scale=args.scale)
    if not (DATA / "train" / "records.jsonl").is_file():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "verlm_data.py"), "--out", str(DATA)],
                       check=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    results = json.loads(out_json.read_text()) if out_json.is_file() and not args.fresh else {}
    results.update(setup=asdict(s), tiny_lm=tiny_lm(s), extra=args.extra)
    results.setdefault("variants", {})
    recs = test_records(s)
    for name in (EXTRA if args.extra else [n for n in VARIANTS if n not in EXTRA]):
        if args.only and _slug(name) not in args.only.split(","):
            continue
        results["variants"][name] = run_variant(name, s, recs, args.fresh)
        print(name, json.dumps(results["variants"][name]), file=sys.stderr, flush=True)
        out_json.write_text(json.dumps(results, indent=2) + "\n")
    if args.seed == 0 and not args.extra and args.scale == 1:
        write_report(results, DOCS / "verlm.md", more=groups(DOCS, results))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
