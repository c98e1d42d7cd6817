"""FaceXBench's own scoring, reproduced so that facelm's MCQ numbers can be compared with published
FaceXBench numbers (`facelm eval mcq --extractor facexbench`).

`extract_option_label` and `aggregate` port `aggregate_results.py` of
github.com/Kartik-3004/facexbench (commit 07b44451f3a2e25790710f7ca1bdbd44c337465e) with its
behaviour unchanged, quirks included:

1. The first one-letter word anywhere in the answer is the choice: "A man with glasses" reads as A,
   "not A, it is C" as A (negation is not looked at). Only uppercase letters within the options
   count, so "b" alone is no answer.
2. With no such letter, an option whose text is a case-sensitive substring of the answer is the
   choice, the first in option order: with options ["male", "female"], "female" reads as "male".
3. A failed question has an empty prediction, so no answer: wrong, and counted.
4. Groups are the JSON files' own `category` (headpose is under `face_localization`); the script's
   category table is unused. Every *.json under the results folder is counted, recursively.
5. evaluate.py (which writes the predictions) labels at most four options, A-D, in the prompt, while
   aggregate_results.py accepts a letter for every option.

`write_layout` writes results in FaceXBench's per-file layout (evaluate.py's output: each benchmark
JSON with a `prediction` per question) so FaceXBench's script can re-score them as they are.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from .mcq import Task

# Tried in this order, first at the start of the answer, then anywhere (as aggregate_results.py).
_LABEL_PATTERNS = (
    r"\b\(?([A-Za-z])\)?\b",      # 'A', '(A)'
    r"\bOption\s+([A-Za-z])\b",   # 'Option A'
    r"\b([A-Za-z])\.",            # 'A.'
    r"\b([A-Za-z]):",             # 'A:'
    r"\b([A-Za-z])\s+-",          # 'A -'
    r"\b\(([A-Za-z])\)",          # '(A)'
)
EXTRACTORS = ("facelm", "facexbench")


def extract_option_label(model_output: str, option_labels: Sequence[str],
                         options: Sequence[Any]) -> str | None:
    """The letter FaceXBench's aggregate_results.py reads from an answer (None: no answer)."""
    text = model_output.strip()
    for pattern in _LABEL_PATTERNS:
        m = re.match(pattern, text)
        if m and m.group(1) in option_labels:
            return m.group(1)
    for pattern in _LABEL_PATTERNS:
        for label in re.findall(pattern, text):
            if label in option_labels:
                return label
    for idx, option in enumerate(options):
        if str(option).strip() in text:  # also covers the exact-match test the script makes first
            return option_labels[idx]
    return None


def prediction_text(rec: dict[str, Any]) -> str:
    """What FaceXBench's evaluate.py would store as `prediction` for this record: the generated
    answer stripped; the chosen letter for a log-likelihood answer; '' for a failed question."""
    if rec.get("error") is not None:
        return ""
    if rec.get("mode") == "generate":
        return str(rec.get("output") or "").strip()
    return rec.get("pred") or ""


def facexbench_choice(rec: dict[str, Any], options: Sequence[str]) -> str | None:
    labels = [chr(ord("A") + i) for i in range(len(options))]
    return extract_option_label(prediction_text(rec), labels, options)


def rescore(records: Sequence[dict], tasks: Sequence[Task], extractor: str) -> list[dict]:
    """Each record with both readings (`pred_facelm`, `pred_facexbench`) and `pred`/`is_correct`
    from the chosen extractor. predictions.jsonl keeps facelm's reading (resuming is unaffected)."""
    options = {(t.file, q.id): q.options for t in tasks for q in t.questions}
    out = []
    for rec in records:
        fxb = facexbench_choice(rec, options[(rec["file"], rec["id"])])
        own = rec.get("pred_facelm", rec["pred"])
        pred = fxb if extractor == "facexbench" else own
        out.append({**rec, "pred_facelm": own, "pred_facexbench": fxb, "pred": pred,
                    "is_correct": pred == rec["correct"]})
    return out


def write_layout(tasks: Sequence[Task], records: Sequence[dict], folder: Path) -> list[Path]:
    """One JSON per benchmark file, as FaceXBench's evaluate.py writes it: the file's own JSON with
    a `prediction` per asked question (questions not asked, e.g. under --limit, are left out, so
    re-scoring counts what was asked). Nothing else goes in `folder`: the script reads every
    JSON file under it."""
    folder.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in records:
        by_file[rec["file"]][rec["id"]] = rec
    written = []
    for task in tasks:
        if task.file not in by_file:
            continue
        data = json.loads(Path(task.source).read_text(encoding="utf-8"))
        asked = by_file[task.file]
        data["questions"] = {qid: {**q, "prediction": prediction_text(asked[qid])}
                             for qid, q in data["questions"].items() if qid in asked}
        written.append(folder / task.file)
        written[-1].write_text(json.dumps(data, indent=4), encoding="utf-8")
    return written


def aggregate(folder: Path) -> dict[str, Any]:
    """aggregate_results.py's counts over a per-file results folder (files in sorted order; the
    script takes os.walk's order, which changes only the order of the groups)."""
    counts: dict[str, dict] = {k: defaultdict(lambda: [0, 0])
                               for k in ("category", "sub-category", "num_images")}
    correct = total = 0
    for path in sorted(Path(folder).rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = {k: data.get(k, "unknown") for k in counts}
        for q in data.get("questions", {}).values():
            options = q.get("options", [])
            labels = [chr(ord("A") + i) for i in range(len(options))]
            hit = extract_option_label(q.get("prediction", ""), labels, options) == \
                q.get("correct_answer_option")
            total, correct = total + 1, correct + hit
            for k, v in keys.items():
                counts[k][v][0] += hit
                counts[k][v][1] += 1
    return {"correct": correct, "questions": total,
            "accuracy": 100.0 * correct / total if total else 0.0,
            **{k: {g: {"correct": c, "questions": n, "accuracy": 100.0 * c / n}
                   for g, (c, n) in v.items()} for k, v in counts.items()}}


def results_txt(agg: dict[str, Any], model: str) -> str:
    """The results.txt aggregate_results.py writes, from `aggregate`'s counts."""
    lines = [f"Model Name: {model} | Total Questions: {agg['questions']}",
             f"Total Accuracy: {agg['accuracy']:.2f}% ({agg['correct']}/{agg['questions']})", ""]
    for title, key in (("Category", "category"), ("Sub-category", "sub-category"),
                       ("Number of Images", "num_images")):
        lines.append(f"{title} Accuracies:")
        lines += [f"{g}: {t['accuracy']:.2f}% ({t['correct']}/{t['questions']})"
                  for g, t in agg[key].items()]
        lines.append("")
    return "\n".join(lines[:-1]) + "\n"


def score_both(records: Sequence[dict], tasks: Sequence[Task], extractor: str, layout_dir: Path,
               model: str) -> list[dict]:
    """Both readings of every answer (`rescore`), the per-file layout in `layout_dir` and, beside
    it, facexbench_results.txt: what aggregate_results.py prints for that folder."""
    scored = rescore(records, tasks, extractor)
    write_layout(tasks, scored, layout_dir)
    txt = results_txt(aggregate(layout_dir), model)
    (layout_dir.parent / "facexbench_results.txt").write_text(txt, encoding="utf-8")
    return scored
