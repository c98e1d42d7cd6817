"""`facelm eval faithfulness --records RECORDS.jsonl [--pred NAME=PRED.jsonl ...] [--out DIR]`.

Audits the records' answers (the teacher's, named by the records' `teacher` field) and any
prediction files (trained models' outputs for the same ids) claim by claim. The photos are analysed
once and cached in OUT/analyses.jsonl, so a rerun (or another model's audit) does not re-analyse.
Writes report.md, faithfulness.json, claims.jsonl, faithfulness.png and config.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("faithfulness", help="check every claim of explanations against the "
                                            "measured analysis and labels (hallucination rate)")
    p.add_argument("--records", type=Path, required=True,
                   help="records.jsonl (or its folder): images, labels and the teacher's answers")
    p.add_argument("--pred", action="append", default=[], metavar="[NAME=]PRED.jsonl",
                   help='a model\'s outputs, lines {"id": ..., "text": ...} (repeatable)')
    p.add_argument("--out", type=Path, help="report folder (default: RECORDS_DIR/faithfulness)")
    p.add_argument("--skip-records", action="store_true",
                   help="audit only --pred files, not the records' own answers")
    p.add_argument("--no-analysis", action="store_true",
                   help="do not analyse photos: check claims against labels only")
    p.add_argument("--limit", type=int, help="audit the first N records only")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..data.schema import read_records
    from ..errors import InputFormatError
    from .faithfulness import audit_item, summarise
    from .metrics_report import prepare_out
    records = list(read_records(args.records))[:args.limit]
    if not records:
        raise InputFormatError("no records", item=str(args.records))
    base = args.records if args.records.is_dir() else args.records.parent
    out = prepare_out(args.out or base / "faithfulness")
    items = build_items(records, args.pred, base, include_records=not args.skip_records)
    faces = None
    if not args.no_analysis:
        paths = sorted({p for it in items for p in it.images})
        faces = analyse_images(paths, out / "analyses.jsonl", progress=not args.no_progress)
    checks = [audit_item(it, None if faces is None else [faces[p] for p in it.images])
              for it in items]
    summary = summarise(items, checks)
    write_faithfulness_report(out, items, checks, summary,
                              {"records": str(args.records), "pred": list(args.pred),
                               "skip_records": args.skip_records,
                               "analysis": not args.no_analysis, "limit": args.limit})
    for name, m in summary.items():
        print(f"{name}: {m['texts']} texts, {m['claims_per_text']:.1f} claims each, "
              f"{m['supported_pct']:.1f}% supported, {m['contradicted_pct']:.1f}% contradicted, "
              f"{m['uncheckable_pct']:.1f}% uncheckable, "
              f"{m['distinct_texts_pct']:.0f}% distinct texts")
    print(f"report: {out}", file=sys.stderr)
    return 0


def _resolve(path: str, base: Path) -> str:
    p = Path(path)
    return str(p if p.is_absolute() or p.exists() else base / p)


def build_items(records: list, preds: list[str], base: Path, *, include_records: bool = True
                ) -> list:
    """AuditItems for the records' answers and for each prediction file (same ids)."""
    from ..errors import InputFormatError
    from .faithfulness import AuditItem
    from .metrics import read_predictions
    by_id = {r.id: r for r in records}

    def item(rec: Any, model: str, text: str) -> AuditItem:
        return AuditItem(id=rec.id, model=model, text=text,
                         images=tuple(_resolve(p, base) for p in rec.images),
                         labels=dict(rec.labels), same=rec.same)

    items = [item(r, r.teacher or "records", r.answer) for r in records] if include_records else []
    for spec in preds:
        name, _, path = spec.rpartition("=")
        path_ = Path(path)
        name = name or path_.stem
        texts = read_predictions(path_)
        unknown = [i for i in texts if i not in by_id]
        if unknown:
            raise InputFormatError(f"{len(unknown)} prediction id(s) are not in the records "
                                   f"(e.g. {unknown[:3]})", item=str(path_),
                                   hint="predictions must use the records' ids (or raise --limit)")
        items += [item(by_id[i], name, t) for i, t in texts.items()]
    if not items:
        raise InputFormatError("nothing to audit", hint="give --pred or drop --skip-records")
    return items


def analyse_images(paths: list[str], cache: Path, *, progress: bool = True) -> dict[str, Any]:
    """path -> FaceAnalysis (None where no face could be analysed), cached in a JSONL file."""
    from ..faces.types import FaceAnalysis
    from ..data.store import repair
    from ..outlock import output_lock
    with output_lock(cache):  # one writer: a second audit into this folder is refused
        done: dict[str, Any] = {  # repair: a killed run's partial last line is cut
            row["path"]: None if row.get("analysis") is None else
            FaceAnalysis.from_dict(row["analysis"])
            for row in repair(cache, "path", "photo analysis")}
        todo = [p for p in paths if p not in done]
        _analyse_into(cache, todo, done, progress)
    return {p: done[p] for p in paths}


def _analyse_into(cache: Path, todo: list[str], done: dict[str, Any], progress: bool) -> None:
    """Analyse the `todo` photos into `done`, appending each to the cache."""
    from tqdm.auto import tqdm
    from ..errors import FaceLMError
    from ..faces.analysis import analyse_or_error
    from ..schema_version import stamp
    with cache.open("a", encoding="utf-8") as fh:
        for p in tqdm(todo, desc="analyse photos", unit="photo", disable=not progress):
            a = analyse_or_error(p)  # one bad photo makes its claims uncheckable, no more
            a, err = (None, str(a)) if isinstance(a, FaceLMError) else (a, None)
            done[p] = a
            fh.write(json.dumps(stamp({"path": p, "error": err, "analysis": None if a is None
                                       else a.to_dict(embeddings=True)})) + "\n")


def write_faithfulness_report(out: Path, items: list, checks: list, summary: dict[str, Any],
                              settings: dict[str, Any]) -> None:
    from ..jsonl import dumps_line
    from ..schema_version import stamp
    from .faithfulness import GROUPS, STATUSES
    from .metrics_report import markdown_table, save_config, write_json
    write_json(out / "faithfulness.json", summary, stamped=False)  # model name -> scores
    with (out / "claims.jsonl").open("w", encoding="utf-8") as fh:
        for it, cs in zip(items, checks):
            fh.write(dumps_line(stamp({"id": it.id, "model": it.model,
                                       "claims": [c.to_dict() for c in cs]})))
    _plot(out / "faithfulness.png", summary)
    save_config(out, "facelm eval faithfulness", settings)

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"
    rows = [(name, m["texts"], pct(m["distinct_texts_pct"]), f"{m['claims_per_text']:.2f}",
             pct(m["supported_pct"]), pct(m["contradicted_pct"]), pct(m["uncheckable_pct"]),
             pct(m["label_contradicted_pct"]), pct(m["verdict_agreement_pct"]))
            for name, m in summary.items()]
    md = ["# Faithfulness audit", "",
          markdown_table(["model", "texts", "% distinct texts", "claims/text", "% supported",
                          "% contradicted (hallucination)", "% uncheckable",
                          "% contradicted by labels", "verdict agreement % (label)"], rows), ""]
    header = ["claims", *STATUSES, *(f"% {s}" for s in STATUSES)]

    def table(first: str, counts: dict[str, dict[str, float]], order: list[str]) -> str:
        return markdown_table([first, *header], [
            (k, counts[k]["claims"], *(counts[k][s] for s in STATUSES),
             *(pct(counts[k][f"{s}_pct"]) for s in STATUSES)) for k in order if k in counts])
    for name, m in summary.items():
        md += [f"## {name}: claims by group", "", table("group", m["groups"], list(GROUPS)), "",
               f"## {name}: claims by kind", "", table("kind", m["kinds"], sorted(m["kinds"])),
               ""]
    md += ["Supported/contradicted: against the measured analysis of the photo (claims stated as "
           "labels: against the labels). Uncheckable: not measured, unreliable or borderline. "
           "Every claim, with the measurement it was checked against, is in claims.jsonl.", "",
           "![faithfulness](faithfulness.png)", ""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")


def _plot(path: Path, summary: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(summary)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names) + 2), 4))
    bottom = [0.0] * len(names)
    for status, color in (("supported", "#55a868"), ("contradicted", "#c44e52"),
                          ("uncheckable", "#bbbbbb")):
        vals = [summary[n][f"{status}_pct"] for n in names]
        ax.bar(names, vals, bottom=bottom, color=color, label=status)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("% of claims")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Claims checked against measurements")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
