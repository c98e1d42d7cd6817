"""Profile one VerLM training step with SmolLM2 on this CPU: threads, bf16 autocast (AMX), stage.

    python benchmarks/verlm_profile.py [--steps 3] [--mode grounded]

Real LFW View 1 pairs with their template explanations (detailed tier, the longest answers), batch 8.
Prints a table of seconds per optimizer step and steps/s, each setting against the first (the
trainer's old default: fp32, torch's default thread count).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw-view1"


def items(tok, cfg, n: int, tier: str):
    from facelm.csvio import read_csv
    from facelm.data.schema import PAIR_QUESTIONS
    from facelm.explain import explain_pair
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.inputs import make_item
    from facelm.verify import compare_analyses
    ext, out = FaceFeatureExtractor(), []
    for r in read_csv(LFW / "pairs.csv")[1][:n]:
        files = [str(LFW / r["file_a"]), str(LFW / r["file_b"])]
        exp = explain_pair(compare_analyses(*(ext.analysis(f) for f in files)))
        text = exp.detailed if tier == "detailed" else exp.concise
        out.append(make_item(files, PAIR_QUESTIONS[tier], tok, cfg, ext, text, 256))
    return out


def time_step(model, batch, params, precision: str, steps: int) -> float:
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(batch)
        loss.backward()
        opt.step(), opt.zero_grad()
        if i:  # the first step pays one-off allocation and oneDNN kernel selection
            times.append(time.perf_counter() - t)
    return sum(times) / len(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--mode", default="grounded", choices=("vision", "grounded"))
    ap.add_argument("--tier", default="concise", choices=("concise", "detailed"))
    ap.add_argument("--settings", default="mapper:fp32:2,mapper:fp32:1,mapper:bf16:2,mapper:bf16:1,full:bf16:1",
                    help="stage:precision:threads,... (stage mapper or full = LoRA r=8)")
    args = ap.parse_args(argv)
    from facelm.eval.metrics_report import markdown_table
    from facelm.models.verlm.checkpoint import add_lora
    from facelm.models.verlm.config import VerLMConfig
    from facelm.models.verlm.inputs import collate
    from facelm.models.verlm.lm import load_lm
    from facelm.models.verlm.model import VerLM
    cfg = VerLMConfig(mode=args.mode, mapper_layers=1, cross_layers=1, prompt_layers=1)
    lm, tok = load_lm("smollm2")
    torch.manual_seed(0)
    model = VerLM(cfg, lm, tok).train()
    batch = collate(items(tok, cfg, args.batch_size, args.tier), int(tok.pad_token_id))
    tokens = int(batch["answer_mask"].sum()) + int(batch.get("evidence_mask", batch["answer_mask"]).sum())
    prefix = [p for m in model.prefix_modules() for p in m.parameters()]
    for p in lm.parameters():
        p.requires_grad_(False)
    rows, base = [], None
    settings = [tuple(x.split(":")) for x in args.settings.split(",")]
    for stage, precision, threads in settings:
        threads = int(threads)
        torch.set_num_threads(threads)
        params = prefix
        if stage == "full" and model.__dict__.get("peft") is None:
            add_lora(model, 8, 16)
        if stage == "full":
            params = prefix + [p for n, p in model.lm.named_parameters() if "lora_" in n]
            for p in params:
                p.requires_grad_(True)
        s = time_step(model, batch, params, precision, args.steps)
        base = base or s
        rows.append([stage, precision, threads, f"{s:.2f}", f"{1 / s:.3f}", f"{base / s:.2f}x"])
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"SmolLM2-135M VerLM ({args.mode}, {args.tier} answers), batch {args.batch_size}, "
          f"{tokens} LM input tokens per batch besides the prefix")
    print(markdown_table(["stage", "precision", "threads", "s/step", "steps/s", "vs first"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
