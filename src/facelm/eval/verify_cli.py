"""`facelm eval verify`: the verification protocol on an LFW-style pairs CSV (k-fold accuracy, ROC
AUC, EER, TAR@FAR, ROC plot; fused score and each identity model) with fairness breakdowns, and
attribute accuracy per demographic group from a labelled photo CSV.

Pairs are verified with facelm.batch (each photo analysed once, parallel, resumable) into
OUT/pairs.jsonl; the labelled photos are analysed into OUT/attributes.jsonl (also resumable).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from ..cli_table import add_engine_options
from ..csvio import read_csv, read_csv_lines
from ..data.store import repair
from ..errors import FaceLMError, InputFormatError
from ..outlock import output_lock
from ..schema_version import dumps as stamped_json

SCORES = ("fused", "sface", "dlib")
FAIL_SCORE = -1.0  # a pair with a failed photo is a rejection, as a deployed system would decide


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="verification protocol (10-fold, ROC, EER, TAR@FAR) and fairness",
                       description="Run the LFW-style protocol on a pairs CSV and/or attribute "
                                   "accuracy per group on a labelled photo CSV; writes a report folder.")
    p.add_argument("--pairs", type=Path, help="CSV with file_a,file_b,same (fold, set, id_a, id_b, "
                                              "gender/age/race or *_a/*_b columns optional)")
    p.add_argument("--root", type=Path, help="folder the pairs' paths are relative to (default: the CSV's folder)")
    p.add_argument("--set", dest="subset", help="keep rows whose `set` column equals this (e.g. view1_test)")
    p.add_argument("--folds", type=int, default=10, help="folds when the CSV has no fold column (default 10)")
    p.add_argument("--labels", type=Path, help="CSV file,age,gender[,race,expression]: attribute "
                                               "accuracy per demographic group")
    p.add_argument("--labels-root", type=Path, help="folder the labels' paths are relative to (default: its folder)")
    p.add_argument("--limit", type=int, help="first N rows of each CSV (quick runs)")
    p.add_argument("--min-group", type=int, default=20, help="smallest group counted in the gaps (default 20)")
    p.add_argument("--out", type=Path, default=Path("reports") / "verify", help="report folder")
    p.add_argument("--workers", type=int, default=2)
    add_engine_options(p)   # who analyses the pairs' photos (the attribute section stays local)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_verify)


def _read_rows(path: Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    return read_csv(path, need)[1]


def _label(value: str, line: int, path: Path) -> int:
    v = str(value).strip().lower()
    if v in ("1", "true", "same", "yes"):
        return 1
    if v in ("0", "false", "different", "no"):
        return 0
    raise InputFormatError(f"line {line}: same={value!r} is not 1/0", item=str(path),
                           hint="the `same` column holds 1 (same person) or 0 (different people)")


def _check_ages(numbered: list[tuple[int, dict[str, str]]], columns: tuple[str, ...], path: Path) -> None:
    """Before any work: an impossible age label (-5, 300) would skew the report's age groups."""
    from ..data.sources import check_age_label
    for line, row in numbered:
        for col in columns:
            check_age_label((row.get(col) or "").strip() or None, line, path)


def _selected_pairs(args: argparse.Namespace, out: Path) -> Path:
    """The rows to verify (after --set/--limit) as OUT/pairs_used.csv, so batch results line up."""
    _, all_rows, lines = read_csv_lines(args.pairs, ("file_a", "file_b", "same"))
    numbered = list(zip(lines, all_rows))  # line numbers for messages (blank lines are skipped)
    _check_ages(numbered, ("age", "age_a", "age_b"), args.pairs)
    if args.subset:
        if all_rows and "set" not in all_rows[0]:
            raise InputFormatError("has no `set` column to filter with --set", item=str(args.pairs))
        numbered = [(n, r) for n, r in numbered if r.get("set") == args.subset]
        if not numbered:
            raise InputFormatError(f"no rows with set={args.subset!r}", item=str(args.pairs))
    numbered = numbered[: args.limit] if args.limit else numbered
    rows = [r for _, r in numbered]
    if len({_label(r["same"], n, args.pairs) for n, r in numbered}) < 2:
        raise InputFormatError(f"the {len(rows)} selected pairs all have the same label", item=str(args.pairs),
                               hint="the protocol needs same and different pairs (check --set / --limit)")
    used = out / "pairs_used.csv"
    with open(used, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    return used


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_inputs(out: Path, part: str, key: dict[str, str]) -> None:
    """Refuse to resume cached results (pairs.jsonl / attributes.jsonl) made from other inputs."""
    path = out / f"inputs-{part}.json"
    if path.exists() and json.loads(path.read_text(encoding="utf-8")) != key:
        raise InputFormatError(f"holds {part} results made from different inputs", item=str(out),
                               hint="use a new --out folder (results there are resumed, not redone)")
    path.write_text(json.dumps(key) + "\n", encoding="utf-8")


def verification_section(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import numpy as np
    from ..batch import BatchConfig, run
    from .fairness import ATTRIBUTES, pair_groups, verification_by_group
    from .protocol import assign_folds, public, roc_plot, run_protocol
    used = _selected_pairs(args, out)
    root = args.root or args.pairs.parent
    from .. import score_norm   # scores under another normalisation must not be resumed into these
    key = {"pairs_sha256": _sha256(used), "root": str(Path(root).resolve())}
    _check_inputs(out, "pairs", key if score_norm.mode() == "none" else {**key, "score_norm": score_norm.mode()})
    run(BatchConfig(pairs=used, out=out / "pairs.jsonl", root=root, workers=args.workers,
                    engine=args.engine, address=args.address),
        progress=not args.quiet)
    recs = sorted(repair(out / "pairs.jsonl", "index", "verify --pairs result"),
                  key=lambda r: r["index"])
    labels = np.array([_label(r.get("input_same", r.get("same")), r["index"] + 2, used) for r in recs])
    failed = [r for r in recs if "error" in r]
    score = lambda r, k: FAIL_SCORE if "error" in r else (r["score"] if k == "fused" else r["scores"][k])  # noqa: E731
    sets = {k: np.array([score(r, k) for r in recs]) for k in SCORES}
    folds = assign_folds(labels, [r.get("fold") for r in recs] if any("fold" in r for r in recs) else None,
                         args.folds)
    results = run_protocol(sets, labels, folds)
    roc_plot(sets, labels, out / "roc.png", title=f"{args.pairs.name}: {len(recs)} pairs")
    fairness = {}
    for attribute in ATTRIBUTES:
        grouped = pair_groups(recs, attribute)
        if grouped is not None:
            groups, source = grouped
            fairness[attribute] = {"source": source, **verification_by_group(
                groups, labels, results["fused"]["predictions"], sets["fused"], args.min_group)}
    return {"pairs": len(recs), "failed": len(failed),
            "failed_examples": [f"row {r['index'] + 2}: {r['error']}" for r in failed[:10]],
            "folds": "from the fold column" if any(r.get("fold") for r in recs) else
            f"assigned: {len(set(folds.tolist()))} stratified blocks in file order",
            "protocol": public(results), "fairness": fairness,
            "race_note": race_note(fairness)}


def race_note(fairness: dict[str, Any]) -> str | None:
    """What a reader must know about the race groups: estimated ones come with the head's card."""
    from ..faces.attr_heads import card_line
    if "race" not in fairness:
        return "no race labels in the pairs CSV and no race estimates (FACELM_ATTRIBUTES=dlib-v1)"
    return None if fairness["race"]["source"] == "labels" else card_line()


def _analyse_photo(path: str) -> dict[str, Any]:
    from ..faces.analysis import analyse_or_error
    a = analyse_or_error(path)
    if isinstance(a, FaceLMError):
        return {"error": str(a)}
    return {"gender": a.attributes.gender, "age": a.attributes.age, "expression": a.attributes.expression,
            "race": a.attributes.race}


def attribute_section(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from tqdm import tqdm
    from ..workers import process_pool
    from .fairness import attributes_by_group
    _, rows, lines = read_csv_lines(args.labels, ("file",))
    _check_ages(list(zip(lines, rows)), ("age",), args.labels)
    rows = rows[: args.limit or None]
    root = args.labels_root or args.labels.parent
    _check_inputs(out, "attributes", {"labels_sha256": _sha256(args.labels), "root": str(Path(root).resolve())})
    cache_path = out / "attributes.jsonl"
    # a killed run's partial line is cut; a file that is not ours is refused unchanged
    done = {rec["file"]: rec for rec in repair(cache_path, "file", "attribute result")}
    todo = [r["file"] for r in rows if r["file"] not in done]
    paths = [str(Path(root) / p) for p in todo]
    pool = process_pool(args.workers) if args.workers > 1 and todo else None
    try:
        results = pool.map(_analyse_photo, paths, chunksize=8) if pool else map(_analyse_photo, paths)
        with open(cache_path, "a", encoding="utf-8") as f:
            for name, est in tqdm(zip(todo, results), total=len(todo), desc="attributes", disable=args.quiet):
                done[name] = {"file": name, **est}
                f.write(stamped_json(done[name]) + "\n")
    finally:
        if pool:
            pool.shutdown()
    pairs = [{"label": r, "est": done[r["file"]]} for r in rows if "error" not in done[r["file"]]]
    failed = [f"{r['file']}: {done[r['file']]['error']}" for r in rows if "error" in done[r["file"]]]
    return {"photos": len(rows), "failed": len(failed), "failed_examples": failed[:10],
            **attributes_by_group(pairs, args.min_group)}


def cmd_verify(args: argparse.Namespace) -> int:
    if args.pairs is None and args.labels is None:
        raise InputFormatError("nothing to evaluate", item="facelm eval verify",
                               hint="give --pairs PAIRS.csv (verification) and/or --labels LABELS.csv "
                                    "(attribute accuracy per group)")
    for flag, val in (("--limit", args.limit), ("--folds", args.folds), ("--min-group", args.min_group)):
        if val is not None and val < 1:
            raise InputFormatError(f"must be at least 1, got {val}", item=flag)
    with output_lock(args.out, folder=True):  # one run per report folder (it resumes)
        return _run_verify(args)


def _run_verify(args: argparse.Namespace) -> int:
    from .verify_report import write_verify_report
    from .. import score_norm
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    config["score_norm"] = score_norm.mode()
    report: dict[str, Any] = {"config": config}
    if args.pairs is not None:
        report["verification"] = verification_section(args, args.out)
    if args.labels is not None:
        report["attributes"] = attribute_section(args, args.out)
    write_verify_report(report, args.out)
    v = report.get("verification")
    if v:
        f = v["protocol"]["fused"]
        print(f"{v['pairs']} pairs ({v['failed']} failed): fused accuracy {f['accuracy_mean']:.4f} "
              f"± {f['accuracy_std']:.4f}, AUC {f['roc_auc']:.4f}, EER {f['eer']:.4f}", file=sys.stderr)
    print(f"report in {args.out}/report.md", file=sys.stderr)
    return 0
