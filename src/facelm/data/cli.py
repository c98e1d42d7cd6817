"""`facelm data qa|pairs|export`: teacher data generation and dataset exports.

Nothing heavy is imported at module level: `facelm --help` loads this module.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_table import add_engine_options

ASPECT_HELP = ("comma-separated, among demographics, facial_structure, skin_texture, expression, "
               "lighting_quality, pose, forensic, general (default: all eight)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("data", help="generate teacher data (QA, pair explanations) and export it")
    dsub = p.add_subparsers(dest="data_command", required=True)
    _add_qa(dsub)
    _add_pairs(dsub)
    _add_export(dsub)


def _teacher_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("teacher")
    g.add_argument("--teacher", choices=("evidence", "openai"), default="evidence",
                   help="evidence: offline, from labels and measurements; openai: any "
                        "OpenAI-compatible chat endpoint")
    g.add_argument("--model", help="chat model name (openai teacher; default gpt-4o-mini)")
    g.add_argument("--base-url", action="append",
                   help="endpoint base URL (default https://api.openai.com/v1); several: repeat "
                        "the flag or list them comma-separated, e.g. one vLLM server per GPU "
                        "node; URL#N caps that one at N requests in flight")
    g.add_argument("--api-key-env", help="environment variable holding the key "
                                         "(default OPENAI_API_KEY)")
    g.add_argument("--concurrency", type=int, default=8,
                   help="requests in flight per endpoint (default 8)")
    g.add_argument("--endpoint-cooldown", type=float,
                   help="seconds an endpoint that keeps failing is left alone (default 10)")
    g.add_argument("--timeout", type=float, help="seconds per request (default 120)")
    g.add_argument("--max-retries", type=int, help="retries of a failed request (default 8)")
    g.add_argument("--backoff", type=float, help="first retry's maximum wait, doubling (default 0.25 s)")
    g.add_argument("--retry-after-cap", type=float,
                   help="give up on a request when the server asks to wait longer (default 300 s)")
    g.add_argument("--max-tokens", type=int, help="answer length limit (default 400)")
    g.add_argument("--temperature", type=float, help="sampling temperature (default 0.7)")
    g.add_argument("--price-in", type=float, help="USD per million prompt tokens (for the cost)")
    g.add_argument("--price-out", type=float, help="USD per million completion tokens")
    g.add_argument("--transport", choices=("auto", "lean", "httpx"),
                   help="HTTP client: lean (fast, default) or httpx (used when a proxy is set)")
    g.add_argument("--refusal-retries", type=int, default=2,
                   help="retries with the stricter prompt after a refusal (default 2)")
    g = p.add_argument_group("job")
    g.add_argument("--prompts", help="your own prompt file (TOML; start from "
                                     "facelm/teacher/prompts/v1.toml)")
    g.add_argument("--grounding", action="store_true",
                   help="add the measured analysis (pose, quality, expression) to the prompt")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=1, help="face-analysis processes (default 1)")
    add_engine_options(g)   # who analyses the photos (docs/scale.md)
    g.add_argument("--retry-failed", action="store_true",
                   help="redo the items failures.jsonl lists (they are skipped by default)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _spec(args: argparse.Namespace) -> Any:
    from ..teacher.registry import TeacherSpec
    base_url = ",".join(args.base_url) if args.base_url else None
    return TeacherSpec(name=args.teacher, model=args.model, base_url=base_url,
                       api_key_env=args.api_key_env, timeout_s=args.timeout,
                       max_retries=args.max_retries, backoff_base_s=args.backoff,
                       retry_after_cap_s=args.retry_after_cap, max_tokens=args.max_tokens,
                       temperature=args.temperature, price_in=args.price_in,
                       price_out=args.price_out, transport=args.transport,
                       cooldown_s=args.endpoint_cooldown)


def _add_qa(dsub: Any) -> None:
    p = dsub.add_parser("qa", help="per-aspect QA about single faces (FairFaceGPT recipe)",
                        description="Attribute-aware QA: the teacher is told each photo's labels "
                                    "and asked about one aspect; stored questions carry no label.")
    p.add_argument("--images", required=True, help="folder the CSV's file paths are relative to")
    p.add_argument("--labels", required=True, help="CSV with file and age/gender/race columns")
    p.add_argument("--out", required=True, help="dataset folder (re-running resumes)")
    p.add_argument("--aspects", help=ASPECT_HELP)
    p.add_argument("--limit", type=int, help="only the first N photos of the CSV")
    p.add_argument("--columns", help="column mapping, e.g. file=img,race=ethnicity,age=age_bin")
    _teacher_options(p)
    p.set_defaults(func=cmd_qa)


def _add_pairs(dsub: Any) -> None:
    p = dsub.add_parser("pairs", help="verification pairs with concise and detailed explanations "
                                      "(VerLM recipe)")
    p.add_argument("--labels", help="CSV with file,identity (needed unless --pairs is given)")
    p.add_argument("--images", required=True, help="folder the CSVs' file paths are relative to")
    p.add_argument("--out", required=True, help="dataset folder (re-running resumes)")
    p.add_argument("--pairs", help="explain these pairs instead of sampling: CSV with "
                                   "file_a,file_b,same (id_a,id_b optional)")
    p.add_argument("--n-pairs", type=int, default=1000, help="pairs to sample, half same, half "
                                                             "different (default 1000)")
    p.add_argument("--hard-negatives", action="store_true",
                   help="different-people pairs from the closest identities (embeddings)")
    p.add_argument("--same-group", action="store_true",
                   help="hard negatives share gender and age group (labels, else measured)")
    p.add_argument("--steps", choices=("two", "one"), default="two",
                   help="two: describe each face, then compare (the paper); one: both at once")
    p.add_argument("--tiers", default="concise,detailed", help="concise,detailed (default both)")
    p.add_argument("--columns", help="column mapping, e.g. file=img,identity=person")
    _teacher_options(p)
    p.set_defaults(func=cmd_pairs)


def _add_export(dsub: Any) -> None:
    p = dsub.add_parser("export", help="write a dataset for LLaMA-Factory, ms-swift or HF datasets",
                        description="Write DEST/NAME/ (one folder per dataset; LLaMA-Factory's "
                                    "dataset_info.json in DEST). A folder another dataset wrote is "
                                    "never overwritten.")
    p.add_argument("dataset", metavar="OUTDIR", help="a folder made by `facelm data qa|pairs`")
    p.add_argument("--format", required=True, choices=("llamafactory", "swift", "hf"))
    p.add_argument("--to", required=True, metavar="DEST", help="destination folder")
    p.add_argument("--images", choices=("absolute", "relative", "copy"), default="absolute",
                   help="image paths in llamafactory/swift exports: absolute; relative to DEST; "
                        "or copy the photos into DEST/NAME/images/ (DEST can then move as it is). "
                        "hf embeds the photos")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of identities held out for the test split (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="dataset name (default: the OUTDIR folder name)")
    p.add_argument("--llamafactory-yaml", choices=("1b", "8b", "38b"), metavar="SIZE",
                   help="llamafactory: also write NAME/facelm_lora_sft.yaml with FaceLLM's released "
                        "settings for the InternVL3 student of this size (1b, 8b, 38b)")
    p.set_defaults(func=cmd_export)


def _names(text: str) -> tuple[str, ...]:
    """'a, b,,c' -> ('a', 'b', 'c')."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _job_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options `qa` and `pairs` share (QAConfig and PairsConfig fields)."""
    from .sources import parse_columns
    return dict(images=args.images, out=args.out, teacher=_spec(args),
                columns=parse_columns(args.columns), prompts=args.prompts,
                grounding=args.grounding, seed=args.seed, concurrency=args.concurrency,
                refusal_retries=args.refusal_retries, workers=args.workers,
                retry_failed=args.retry_failed, engine=args.engine, address=args.address)


def _run(run: Any, cfg: Any, args: argparse.Namespace) -> int:
    from .job import counts_line
    m = run(cfg, progress=not args.quiet)
    print(f"{args.out}: {counts_line(m)}", file=sys.stderr)
    return 0


def cmd_qa(args: argparse.Namespace) -> int:
    from .qa import QAConfig, run_qa
    from .schema import QA_QUESTIONS
    aspects = _names(args.aspects) if args.aspects else tuple(QA_QUESTIONS)
    return _run(run_qa, QAConfig(labels=args.labels, limit=args.limit, aspects=aspects,
                                 **_job_options(args)), args)


def cmd_pairs(args: argparse.Namespace) -> int:
    from .pair_job import PairsConfig, run_pairs
    return _run(run_pairs, PairsConfig(labels=args.labels, pairs=args.pairs, n_pairs=args.n_pairs,
                                       hard_negatives=args.hard_negatives,
                                       same_group=args.same_group, two_step=args.steps == "two",
                                       tiers=_names(args.tiers), **_job_options(args)), args)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportConfig, export
    cfg = ExportConfig(dataset=args.dataset, format=args.format, to=args.to,
                       test_fraction=args.test_fraction, seed=args.seed, name=args.name,
                       images=args.images, llamafactory_yaml=args.llamafactory_yaml)
    s = export(cfg)
    where = Path(args.to) / (args.name or Path(args.dataset).resolve().name)
    print(f"{where}: {s['train']} train and {s['test']} test examples ({s['dropped']} pairs "
          f"dropped for straddling the split), format {args.format}", file=sys.stderr)
    return 0
