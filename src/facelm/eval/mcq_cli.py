"""`facelm eval mcq` (run a FaceXBench-format benchmark) and `facelm eval make-mcq` (build the local
one from ../shared/data). Nothing heavy is imported until a command runs."""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InputFormatError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("mcq", help="multiple-choice benchmark in FaceXBench's format",
                       description="Run every question of a FaceXBench-format benchmark through a "
                                   "model and write report.md, results.json, bar/radar PNGs.")
    p.add_argument("--bench", type=Path, required=True, help="folder of FaceXBench JSON files (or one file)")
    p.add_argument("--model", default="evidence",
                   help="model spec for facelm.models.load_model: evidence (default), "
                        "openai:MODEL[@URL], a VerLM folder, or a Hugging Face VLM")
    p.add_argument("--mode", choices=("auto", "generate", "loglik"), default="auto",
                   help="generate + answer extraction, option log-likelihood, or loglik where the "
                        "model can (auto)")
    p.add_argument("--out", type=Path, help="report folder (default reports/mcq-<model>); re-running resumes")
    p.add_argument("--images", type=Path, help="folder the image_paths are relative to "
                                                "(default: each JSON file's folder)")
    p.add_argument("--prepend-text", action="store_true",
                   help="put each file's task description before the question (FaceXBench's --prepend_text)")
    p.add_argument("--limit", type=int, help="first N questions of each file")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=1,
                   help="generation mode: questions per generate_batch call (models that batch)")
    p.add_argument("--extractor", choices=("facelm", "facexbench"), default="facelm",
                   help="answer reading that scores the report: facelm's strict extractor "
                        "(default) or FaceXBench's aggregate_results.py, quirks included; both "
                        "are printed, and OUT/facexbench/ holds FaceXBench's per-file layout")
    p.add_argument("--max-failed-share", type=float, default=0.5,
                   help="exit 2 (after writing the report) when a larger share of the questions "
                        "failed, e.g. their images are missing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_mcq)

    m = sub.add_parser("make-mcq", help="build the local FaceXBench-format benchmark from ../shared/data")
    m.add_argument("--out", type=Path, required=True, help="folder for the JSON files")
    m.add_argument("--data", type=Path, help="shared data folder with utkface-dev/ and lfw-view1/ "
                                             "(default: $FACELM_DATA, else ../shared/data)")
    m.add_argument("--per-file", type=int, default=50, help="questions per JSON file (default 50)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=cmd_make_mcq)


def default_data_dir() -> Path:
    """$FACELM_DATA when set; else ../shared/data from the working directory, else beside the
    source checkout."""
    env = os.environ.get("FACELM_DATA")
    if env:
        if not (Path(env) / "utkface-dev").is_dir():
            raise InputFormatError("holds no utkface-dev/ folder", item=f"FACELM_DATA={env}",
                                   hint="point it at the folder holding utkface-dev/ and lfw-view1/")
        return Path(env)
    for cand in (Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[4] / "shared" / "data"):
        if (cand / "utkface-dev").is_dir():
            return cand
    raise InputFormatError("cannot find the shared data folder (../shared/data)", item="--data",
                           hint="pass --data DIR or set FACELM_DATA, the folder holding "
                                "utkface-dev/ and lfw-view1/")


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[:60] or "model"


def cmd_mcq(args: argparse.Namespace) -> int:
    from ..models import load_model
    from .mcq import load_benchmark
    from .mcq_facexbench import score_both
    from .mcq_report import write_report
    from .mcq_run import MCQConfig, check_failures, run_mcq
    for flag, val in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if val is not None and val < 1:
            raise InputFormatError(f"must be at least 1, got {val}", item=flag)
    if not 0 <= args.max_failed_share <= 1:   # NaN included: it would let every run pass
        raise InputFormatError(f"must be between 0 and 1, got {args.max_failed_share}",
                               item="--max-failed-share")
    cfg = MCQConfig(bench=str(args.bench), model=args.model, mode=args.mode,
                    prepend_text=args.prepend_text, max_new_tokens=args.max_new_tokens,
                    seed=args.seed, limit=args.limit, batch_size=args.batch_size,
                    images_root=None if args.images is None else str(args.images),
                    extractor=args.extractor)
    tasks = load_benchmark(args.bench, args.images)
    out = args.out or Path("reports") / f"mcq-{_slug(args.model)}"
    model = load_model(args.model)
    t0 = time.perf_counter()
    records = run_mcq(model, tasks, cfg, out, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    name = getattr(model, "name", args.model)
    records = score_both(records, tasks, args.extractor, out / "facexbench" / _slug(name), name)
    warnings = [f"{t.file}: {w}" for t in tasks for w in t.warnings]
    config = {"mcq": cfg.to_dict(), "model_name": getattr(model, "name", args.model),
              "files": [t.file for t in tasks], "data_quirks": warnings,
              "seconds_this_run": round(seconds, 1)}
    s = write_report(records, getattr(model, "name", args.model), config, out, make_plots=not args.no_plots)
    o = s["overall"]
    names = {"facelm": "facelm's extractor", "facexbench": "FaceXBench's aggregate_results.py"}
    both = "".join(f"{names[k]} {v['accuracy']:.2f}%, " for k, v in s["extractors"].items())
    print(f"{o['questions']} questions: accuracy {o['accuracy']:.2f}% ({o['correct']} correct, "
          f"{o['unparsed']} unparsed, {o['errors']} failed; --extractor {args.extractor}); "
          f"{both}report in {out}/report.md", file=sys.stderr)
    check_failures(records, args.max_failed_share, out)
    return 0


def cmd_make_mcq(args: argparse.Namespace) -> int:
    from .make_mcq import MakeMCQConfig, make_mcq
    if args.per_file < 1:
        raise InputFormatError(f"must be at least 1, got {args.per_file}", item="--per-file")
    data = args.data or default_data_dir()
    files = make_mcq(MakeMCQConfig(data=str(data), out=str(args.out), per_file=args.per_file, seed=args.seed))
    print(f"{len(files)} files, {args.per_file} questions each, written to {args.out}", file=sys.stderr)
    return 0
