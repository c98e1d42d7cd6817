"""A real, small FaceLLM fine-tune on this machine's CPU.

Model: InternVL architecture whose language model is the offline SmolLM2-135M-Instruct (real
weights) and whose vision tower/projector are built from config (random, frozen). Data: UTKFace
photos from ../shared/data with per-aspect QA written by `facelm data qa --teacher evidence`
(labels-aware, offline). LoRA on the language model only (the "released" preset's targets and rank),
trained with `facelm.train.vlm.train`.

Held-out photos (never trained on) measure, before and after:
* answer loss: mean token negative log-likelihood of the teacher's answers (teacher forcing);
* gender preference: for each held-out demographics answer, does the model give the true answer a
  higher likelihood than the same answer with the gender words swapped? 50% is chance; with a
  random, frozen vision tower, above-chance needs LoRA to read gender from random image features.

    .venv/bin/python benchmarks/vlm_finetune.py --train-photos 48 --test-photos 16
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "utkface-dev"
SWAP = {"man": "woman", "woman": "man", "boy": "girl", "girl": "boy", "male": "female",
        "female": "male", "he": "she", "she": "he", "his": "her", "her": "his", "men": "women",
        "women": "men", "masculine": "feminine", "feminine": "masculine"}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-photos", type=int, default=48)
    p.add_argument("--test-photos", type=int, default=16)
    p.add_argument("--aspects", default="demographics,expression")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--cutoff", type=int, default=160)
    p.add_argument("--work", type=Path, default=ROOT / ".cache" / "vlm-bench")
    p.add_argument("--json", type=Path, help="write the results here too")
    return p.parse_args()


def make_data(args: argparse.Namespace) -> tuple[Path, Path]:
    """QA records for the first train+test photos of labels.csv, split by photo."""
    from facelm.csvio import read_csv
    from facelm.data.qa import QAConfig, run_qa
    from facelm.data.schema import read_records
    labels = DATA / "labels.csv"
    rows = read_csv(labels)[1]
    n = args.train_photos + args.test_photos
    qa = args.work / "qa"
    run_qa(QAConfig(images=str(DATA), labels=str(labels), out=str(qa), limit=n,
                    aspects=tuple(args.aspects.split(",")), seed=0), progress=False)
    test_files = {str((DATA / r["file"]).resolve()) for r in rows[args.train_photos:n]}
    split: dict[str, list[str]] = {"train": [], "test": []}
    for rec in read_records(qa):
        split["test" if rec.images[0] in test_files else "train"].append(json.dumps(rec.to_dict()))
    for name, lines in split.items():
        (args.work / name).mkdir(exist_ok=True)
        (args.work / name / "records.jsonl").write_text("\n".join(lines) + "\n")
    return args.work / "train", args.work / "test"


def base_model(work: Path) -> Path:
    from facelm.models.hf_compose import build_internvl_on_lm
    from facelm.models.verlm.lm import converted_smollm2
    folder = work / "base-internvl-smollm2"
    if not (folder / "config.json").is_file():
        build_internvl_on_lm(folder, converted_smollm2())
    return folder


def swap_gender(text: str) -> str:
    def sub(m: re.Match) -> str:
        word = m.group(0)
        new = SWAP[word.lower()]
        return new.capitalize() if word[0].isupper() else new
    return re.sub(r"\b(" + "|".join(SWAP) + r")\b", sub, text, flags=re.IGNORECASE)


def evaluate(vlm: Any, test: Path, cutoff: int) -> dict[str, float]:
    """Held-out answer loss (teacher forcing) and gender preference on demographics answers."""
    import torch

    from facelm.models.hf_vlm import answer_logprobs
    from facelm.train.vlm_data import collate, load_examples
    examples = load_examples(test)
    nll, count = 0.0, 0
    for i in range(0, len(examples), 4):
        batch = dict(collate(vlm.processor, examples[i:i + 4], cutoff))
        labels = batch.pop("labels")
        with torch.inference_mode():
            logp, n = answer_logprobs(vlm.model(**batch).logits, labels)
        nll -= float(logp.sum())
        count += int(n.sum())
    right = total = 0
    for e in examples:
        swapped = swap_gender(e.answer)
        if e.id.endswith("#demographics") and swapped != e.answer:
            true, false = vlm.score_choices(list(e.images), e.question, [e.answer, swapped])
            right += true > false
            total += 1
    return {"answer_nll": nll / count, "answer_ppl": float(torch.tensor(nll / count).exp()),
            "gender_pref_acc": right / max(total, 1), "gender_items": total,
            "answer_tokens": count}


def main() -> int:
    args = parse()
    from facelm.models.hf_vlm import load
    from facelm.train.vlm import train
    from facelm.train.vlm_config import make_config
    t0 = time.time()
    train_dir, test_dir = make_data(args)
    base = base_model(args.work)
    t_data = time.time() - t0
    before = evaluate(load(base, device="cpu"), test_dir, args.cutoff)
    out = args.work / "run"
    cfg = make_config(str(base), str(train_dir), str(out), "released", lr=args.lr,
                      epochs=args.epochs, batch_size=args.batch_size, grad_accum=1,
                      cutoff=args.cutoff, gradient_checkpointing=False)
    t1 = time.time()
    result = train(cfg, resume=(out / "checkpoints").is_dir(), progress=True)
    t_train = time.time() - t1
    after = evaluate(load(result.adapter, device="cpu"), test_dir, args.cutoff)
    n_train = len((train_dir / "records.jsonl").read_text().splitlines())
    report = {"config": json.loads((out / "vlm_train_config.json").read_text()),
              "train_records": n_train, "steps": result.steps, "train_s": round(t_train, 1),
              "data_and_build_s": round(t_data, 1), "loss_first": result.losses[0],
              "loss_last": result.losses[-1], "before": before, "after": after,
              "loss_curve": str(out / "loss_curve.png")}
    print(json.dumps(report, indent=2))
    print("\n| metric (held-out photos) | before | after |\n|---|---|---|")
    for k in ("answer_nll", "answer_ppl", "gender_pref_acc"):
        print(f"| {k} | {before[k]:.4f} | {after[k]:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
