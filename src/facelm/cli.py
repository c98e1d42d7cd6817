"""The `facelm` command line: verify, describe, analyze, demo."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, Sequence

from .cli_faces import add_face_option, face_choice, face_note, print_warnings
from .cli_table import add_engine_options, add_table_options, cmd_analyze_table
from .cli_options import Parser, add_max_pixels, max_pixels_set
from .errors import FaceLMError
from .schema_version import dumps as stamped_json

# Command groups that live with their subsystem. Each module has `add_parser(subparsers)`, which
# adds its commands with `set_defaults(func=handler)`; the modules import nothing heavy at top level.
GROUPS: dict[str, str] = {
    "data": "facelm.data.cli",
    "train": "facelm.train.cli",
    "export": "facelm.train.export_cli",   # old name of `train merge`, kept as an alias
    "eval": "facelm.eval.cli",
    "serve": "facelm.serve.cli",
    "index": "facelm.search_cli",          # adds `index build|add|remove` and `search`
}


def _add_verify(sub: Any) -> None:
    p = sub.add_parser("verify", help="are two photos the same person? with explanations",
                       description="Verify one pair (A B) or a CSV of pairs (--pairs).")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="two photos")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--tier", choices=("concise", "detailed", "both"), default="both")
    p.add_argument("--fast", action="store_true", help="identity only: no age/gender/expression")
    p.add_argument("--threshold", type=float, help="override the calibrated threshold")
    p.add_argument("--seed", type=int, default=0, help="phrasing seed for the explanations")
    p.add_argument("--pairs", type=Path, help="CSV with file_a,file_b columns (others are kept)")
    p.add_argument("--root", type=Path, help="folder the CSV's paths are relative to")
    p.add_argument("--out", type=Path, help="JSONL results (re-running resumes)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--retry-failed", action="store_true",
                   help="compute again the rows whose record in --out has an 'error'")
    p.add_argument("--model", metavar="CKPT", help="write the explanation with a trained model "
                   "(a VerLM checkpoint folder or any `load_model` spec); the verdict stays the "
                   "calibrated score's")
    p.add_argument("--embeddings", type=Path, metavar="X.parquet", help="with --pairs: read the "
                   "photos' embeddings from this analysis table (facelm analyze --images) instead of "
                   "analysing them; identity-only verdicts")
    add_engine_options(p)  # with --pairs: who analyses the photos
    add_face_option(p)  # all: compare every face of A with every face of B, judge the best pair


def _add_describe(sub: Any) -> None:
    from .explain import ASPECTS
    p = sub.add_parser("describe", help="answer questions about one face, aspect by aspect")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--aspect", choices=ASPECTS, help="one aspect (default: all eight)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", metavar="CKPT", help="answer with a trained model (VerLM checkpoint "
                   "folder or any `load_model` spec) instead of the evidence explainer")
    add_face_option(p)


def _add_analyze(sub: Any) -> None:
    p = sub.add_parser("analyze", help="print the measured analysis of one face as JSON, or "
                       "analyse many photos into a Parquet table (--images DIR --out X.parquet)")
    p.add_argument("image", metavar="IMAGE", nargs="?")
    add_table_options(p)
    p.add_argument("--fast", action="store_true")
    p.add_argument("--embeddings", action="store_true", help="include the identity embeddings")
    add_face_option(p)  # all: one JSON object with a `faces` list


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = Parser(prog="facelm", description="Face understanding, offline.")
    parser.add_argument("--version", action="version", version=f"facelm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_verify(sub)
    _add_describe(sub)
    _add_analyze(sub)
    sub.add_parser("demo", help="verify a bundled pair and describe a face (no files needed)")
    for module in GROUPS.values():
        add_group(sub, module)
    add_max_pixels(parser)
    return parser


def add_group(sub: Any, module: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not exc.name or not (module + ".").startswith(exc.name + "."):
            # a real missing dependency inside the module: say so
            raise
        return  # the group is not part of this build
    mod.add_parser(sub)


def cmd_verify(args: argparse.Namespace) -> int:
    if args.threshold is not None:  # before any work: NaN would silently judge every pair
        from .verify import check_threshold
        check_threshold(args.threshold)
    if args.embeddings is not None and args.pairs is None:
        raise SystemExit("facelm verify: --embeddings works with --pairs")
    if args.pairs is not None:
        face_choice(args, refuse="--pairs")
        return _verify_batch(args)
    if len(args.images) != 2:
        raise SystemExit("facelm verify: give two images (A B), or --pairs CSV --out JSONL")
    if args.model:
        face_choice(args, refuse="--model")
        return _verify_with_model(args)
    from .api import compare
    cmp = compare(args.images[0], args.images[1], fast=args.fast, threshold=args.threshold,
                  seed=args.seed, face=face_choice(args))
    out = cmp.to_dict()
    print_warnings(out["warnings"])
    print(stamped_json(out) if args.json else format_comparison(cmp, args.tier))
    return 0


def _analyse_for(vlm: Any, image: str, fast: bool) -> Any:
    """Analyse through the model's cached extractor when it has one (no second analysis)."""
    ext = getattr(vlm, "extractor", None)
    if ext is not None and not fast:
        return ext.analysis(image)
    from .api import analyze
    return analyze(image, fast=fast)


def _verify_with_model(args: argparse.Namespace) -> int:
    from .api import compare
    from .data.schema import PAIR_QUESTIONS
    from .models import load_model
    from .models.verlm.verdict import agrees
    vlm = load_model(args.model)
    a, b = (_analyse_for(vlm, img, args.fast) for img in args.images)
    cmp = compare(a, b, threshold=args.threshold, explain=False)
    tiers = ("concise", "detailed") if args.tier == "both" else (args.tier,)
    explanation = vlm.ask(list(args.images), {t: PAIR_QUESTIONS[t] for t in tiers}, seed=args.seed)
    agreement = {t: agrees(x, cmp.same) for t, x in explanation.items()}
    if args.json:
        print(stamped_json({**cmp.to_dict(), "explanation": explanation, "model": args.model,
                          "verdict_agreement": agreement}))
    else:
        lines = [format_comparison(cmp, args.tier)]
        for t, x in explanation.items():
            lines += ["", f"{t.capitalize()} ({args.model}):", "  " + x]
        print("\n".join(lines))
    for t, ok in agreement.items():
        if not ok:
            said = "SAME PERSON" if cmp.same else "DIFFERENT PEOPLE"
            print(f"facelm: warning: the model's {t} text does not state the calibrated verdict "
                  f"({said}); trust the score line", file=sys.stderr)
    return 0


def _verify_batch(args: argparse.Namespace) -> int:
    from .batch import BatchConfig, run
    if args.out is None:
        raise SystemExit("facelm verify --pairs: --out RESULTS.jsonl is required")
    if args.model:  # refused rather than silently ignored
        raise SystemExit("facelm verify --pairs: --model works with one pair (A B); the batch writes "
                         "the evidence explainer's texts")
    s = run(BatchConfig(pairs=args.pairs, out=args.out, root=args.root, workers=args.workers,
                        fast=args.fast, seed=args.seed, threshold=args.threshold,
                        retry_failed=args.retry_failed, engine=args.engine, address=args.address,
                        embeddings=args.embeddings))
    print(f"{s.done} pairs written to {args.out} ({s.failed} failed, see their 'error'); "
          f"{s.skipped} already done earlier; {s.total} in {args.pairs}", file=sys.stderr)
    return 0


def format_comparison(cmp: Any, tier: str = "both") -> str:
    verdict = "SAME PERSON" if cmp.same else "DIFFERENT PEOPLE"
    lines = [f"{verdict}  score {cmp.score:.3f} (threshold {cmp.threshold:.3f}, "
             f"P(same) {cmp.probability:.2f}; SFace {cmp.scores['sface']:.3f}, "
             f"dlib {cmp.scores['dlib']:.3f})"]
    for name, fa in (("A", cmp.a), ("B", cmp.b)):
        lines.append(f"  {name}: {fa.source}  {face_note(fa)}")
    if cmp.face_pair is not None:
        from .multiface import describe_pair
        lines.append("  " + describe_pair(cmp.face_pair))
    if cmp.explanation is not None:
        if tier in ("concise", "both"):
            lines += ["", "Concise:", "  " + cmp.explanation.concise]
        if tier in ("detailed", "both"):
            lines += ["", "Detailed:", "  " + cmp.explanation.detailed]
    return "\n".join(lines)


def cmd_describe(args: argparse.Namespace) -> int:
    from .api import Description, describe
    from .explain import ASPECT_TITLES, ASPECTS
    if args.model:
        face_choice(args, refuse="--model")  # before loading the model: refused either way
        from .data.schema import QA_QUESTIONS
        from .models import load_model
        vlm = load_model(args.model)
        aspects = [args.aspect] if args.aspect else list(ASPECTS)
        answers = vlm.ask([args.image], {x: QA_QUESTIONS[x] for x in aspects}, seed=args.seed)
        d = Description(analysis=_analyse_for(vlm, args.image, False), answers=answers)
    else:
        d = describe(args.image, aspect=args.aspect, seed=args.seed, face=face_choice(args))
    out = d.to_dict()
    print_warnings(out["warnings"])
    if args.json:
        print(stamped_json(out))
    elif isinstance(d, Description):
        print(format_description(d, ASPECT_TITLES))
    else:
        from .cli_faces import format_face_set_description
        print(format_face_set_description(d, ASPECT_TITLES))
    return 0


def format_description(d: Any, titles: dict[str, str]) -> str:
    lines = [f"{d.analysis.source} {face_note(d.analysis)}"]
    for aspect, text in d.answers.items():
        lines += ["", f"{titles.get(aspect, aspect)}:", "  " + text]
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> int:
    if args.images is not None or args.out is not None:
        return cmd_analyze_table(args)
    if args.image is None:
        raise SystemExit("facelm analyze: give one IMAGE, or --images DIR_OR_CSV --out X.parquet")
    from .api import analyze
    out = analyze(args.image, fast=args.fast, face=face_choice(args)).to_dict(embeddings=args.embeddings)
    print_warnings(out["warnings"])
    print(stamped_json(out))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo()
    return 0


COMMANDS = {"verify": cmd_verify, "describe": cmd_describe, "analyze": cmd_analyze, "demo": cmd_demo}


# Packages of the optional extras -> the set-up flag that installs them (a base install has none).
OPTIONAL_PACKAGES: dict[str, str] = {
    **dict.fromkeys(("torch", "transformers", "peft", "accelerate", "safetensors", "gguf",
                     "pycocoevalcap", "datasets", "pyarrow", "faiss"), "--train"),
    **dict.fromkeys(("fastapi", "uvicorn", "starlette", "multipart", "python_multipart"), "--serve"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = COMMANDS.get(args.command) or args.func
        with max_pixels_set(args):
            return handler(args)
    except FaceLMError as exc:
        print(f"facelm: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        flag = OPTIONAL_PACKAGES.get((exc.name or "").split(".")[0])
        if flag is None:
            raise
        print(f"facelm: error: this command needs the '{exc.name}' package, which is not installed "
              f"(install it with: bash scripts/setup.sh {flag})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facelm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
