"""`facelm eval metrics --pred PRED.jsonl --ref REF.jsonl --out REPORT_DIR`.

Writes REPORT_DIR/report.md, metrics.json (exactly the metric keys), details.json (BERTScore P/R,
notes, timings, tokenizer), per_item.jsonl, metrics.png and config.json.
Imports nothing heavy at module level: the CLI parser loads every command group.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("metrics", help="BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap-equal) "
                                       "and BERTScore-MiniLM of generated texts",
                       description="Score predictions against references. PRED.jsonl lines: "
                                   '{"id": ..., "text": ...}; REF.jsonl lines: {"id": ..., '
                                   '"refs": [...]}.')
    p.add_argument("--pred", type=Path, required=True, help="predictions JSONL")
    p.add_argument("--ref", type=Path, required=True, help="references JSONL")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument("--tokenizer", choices=("auto", "ptb-java", "python"), default="auto",
                   help="auto: the reference PTB tokenizer (Java) when Java is present")
    p.add_argument("--meteor", choices=("auto", "java", "approx", "off"), default="auto",
                   help="java: fail without Java; approx: the labelled no-Java approximation")
    p.add_argument("--meteor-workers", type=int,
                   help="METEOR jar processes (default: one per 1,000 items, at most half the CPUs)")
    p.add_argument("--no-bertscore", action="store_true", help="skip BERTScore")
    p.add_argument("--bertscore-model", default="",
                   help="local folder or cached hub name (default: offline all-MiniLM-L6-v2)")
    p.add_argument("--bertscore-layers", type=int, help="hidden layer to use (default: MiniLM 6, "
                                                        "other models their last)")
    p.add_argument("--batch-size", type=int, default=64, help="BERTScore batch size")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..errors import InputFormatError
    from .metrics import (MetricsConfig, check_pairs, evaluate_texts, read_predictions,
                          read_references)
    from .metrics_report import prepare_out
    preds, refs = read_predictions(args.pred), read_references(args.ref)
    try:
        check_pairs(preds, refs)
    except InputFormatError as exc:
        raise InputFormatError(str(exc), item=f"{args.pred} vs {args.ref}") from exc
    cfg = MetricsConfig(tokenizer=args.tokenizer, meteor=args.meteor,
                        bertscore=not args.no_bertscore, bertscore_model=args.bertscore_model,
                        bertscore_layers=args.bertscore_layers, batch_size=args.batch_size,
                        meteor_workers=args.meteor_workers)
    out = prepare_out(args.out)
    res = evaluate_texts(preds, refs, cfg, progress=not args.no_progress)
    write_metrics_report(out, res, cfg, {"pred": str(args.pred), "ref": str(args.ref)})
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    width = max(len(k) for k in res.scores)
    for k, v in res.scores.items():
        print(f"{k:<{width}}  {v:.4f}")
    print(f"report: {out}", file=sys.stderr)
    return 0


def write_metrics_report(out: Path, res: Any, cfg: Any, inputs: dict[str, str]) -> None:
    """report.md, metrics.json, details.json, per_item.jsonl, metrics.png, config.json."""
    from dataclasses import asdict
    from ..schema_version import stamp
    from .metrics_report import bar_and_hist_png, markdown_table, save_config, write_json
    main = res.main_scores()
    write_json(out / "metrics.json", main, stamped=False)  # exactly the metric keys
    write_json(out / "details.json", {"n_items": len(res.ids), "scores": res.scores,
                                      "tokenizer": res.tokenizer, "notes": res.notes,
                                      "timings_s": res.timings})
    with (out / "per_item.jsonl").open("w", encoding="utf-8") as fh:
        for n, i in enumerate(res.ids):
            fh.write(json.dumps(stamp({"id": i, **{k: v[n] for k, v in res.per_item.items()}})) + "\n")
    bars = {k: v for k, v in main.items() if k != "CIDEr"}
    bar_and_hist_png(out / "metrics.png", f"{len(res.ids)} items (CIDEr {main.get('CIDEr', 0):.3f}"
                     " not drawn: other scale)", bars,
                     {k: v for k, v in res.per_item.items() if k != "CIDEr"})
    save_config(out, "facelm eval metrics", {**inputs, **asdict(cfg)})
    md = [f"# Text metrics: {len(res.ids)} items", "",
          markdown_table(["metric", "score"], list(main.items())), "",
          f"Tokenizer: `{res.tokenizer}`. Scale: pycocoevalcap's (0-1; CIDEr ~0-10).", ""]
    if any(k.startswith("BERTScore") for k in main):
        md += ["BERTScore uses the named backbone without rescaling; BERTScore-MiniLM is not "
               "comparable with papers' roberta-large BERTScore.", ""]
    md += [f"> Note: {n}" for n in res.notes] + ([""] if res.notes else [])
    md += ["Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in res.timings.items()), "",
           "![metrics](metrics.png)", ""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
