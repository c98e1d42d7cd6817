"""MCQ reports: accuracy overall, per task (the FaceLLM paper's Table 4 columns), per sub-task and
per number of images, with unparsed answers and failed questions counted; Markdown, JSON and PNGs.

Accuracy is over all questions (unparsed and failed ones count as wrong), as FaceXBench's
aggregate_results.py computes it; "answered accuracy" leaves those out, for diagnosis only.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..schema_version import dumps as stamped_json
from .mcq import TASK_ORDER, TASKS
from .metrics_report import markdown_table


def _tally(records: Iterable[dict]) -> dict[str, Any]:
    recs = list(records)
    n = len(recs)
    correct = sum(bool(r["is_correct"]) for r in recs)
    errors = sum(r.get("error") is not None for r in recs)
    unparsed = sum(r.get("error") is None and r.get("pred") is None for r in recs)
    answered = n - errors - unparsed
    return {"questions": n, "correct": correct, "accuracy": 100.0 * correct / n if n else None,
            "unparsed": unparsed, "errors": errors,
            "answered_accuracy": 100.0 * correct / answered if answered else None,
            "modes": {m: sum(r.get("mode") == m for r in recs) for m in ("loglik", "generate")}}


def _group(records: Sequence[dict], key: str) -> dict[str, dict]:
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[str(r[key])].append(r)
    return {k: _tally(v) for k, v in groups.items()}


def _extractors(records: Sequence[dict]) -> dict[str, dict]:
    """Accuracy under each answer reading, when both were made (mcq_facexbench.rescore)."""
    if not records or not all("pred_facexbench" in r for r in records):
        return {}
    out = {}
    for name in ("facelm", "facexbench"):
        correct = sum(r[f"pred_{name}"] == r["correct"] for r in records)
        out[name] = {"correct": correct, "accuracy": 100.0 * correct / len(records)}
    return out


def summarise(records: Sequence[dict]) -> dict[str, Any]:
    """The report's numbers (also written as results.json)."""
    by_task = _group(records, "task")
    ordered = {t: by_task[t] for t in TASK_ORDER if t in by_task}
    ordered.update({t: v for t, v in by_task.items() if t not in ordered})
    errors = [f"{r['file']} #{r['id']}: {r['error']}" for r in records if r.get("error")]
    subs = _group(records, "sub_category")
    rank = {s: i for i, s in enumerate(TASKS)}  # the paper's sub-task order, unknown ones last
    subs = dict(sorted(subs.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    return {"overall": _tally(records), "tasks": ordered, "sub_tasks": subs, "files": _group(records, "file"),
            "categories": _group(records, "category"),  # FaceXBench's own JSON categories
            "num_images": _group(records, "num_images"), "error_examples": errors[:20],
            "extractors": _extractors(records)}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _task_title(sub: str) -> tuple[str, str]:
    task, title = TASKS.get(sub, ("", sub))
    return task, f"{title} (`{sub}`)"


def _extractor_lines(summary: dict[str, Any], config: dict[str, Any]) -> list[str]:
    ex = summary.get("extractors")
    if not ex:
        return [""]
    return ["", f"Overall accuracy by answer reading (this report uses `--extractor "
                f"{config.get('extractor', 'facelm')}`): facelm's extractor "
                f"{_pct(ex['facelm']['accuracy'])}, FaceXBench's aggregate_results.py "
                f"{_pct(ex['facexbench']['accuracy'])}.", ""]


def markdown(summary: dict[str, Any], model: str, config: dict[str, Any]) -> str:
    o = summary["overall"]
    lines = [f"# Multiple-choice benchmark: {model}", "",
             f"Benchmark `{config.get('bench')}`, mode `{config.get('mode')}`, "
             f"prepend_text {config.get('prepend_text')}, seed {config.get('seed')}. "
             f"{o['questions']} questions: {o['correct']} correct, {o['unparsed']} unparsed, "
             f"{o['errors']} failed (both scored wrong).", "",
             "Accuracy (%) in the layout of FaceLLM's Table 4 (– = no questions of that task):", "",
             markdown_table(["Models", "Overall", *TASK_ORDER],
                            [[model, _pct(o["accuracy"]),
                              *(_pct(summary["tasks"].get(t, {}).get("accuracy")) for t in TASK_ORDER)]]),
             *_extractor_lines(summary, config), "## Sub-tasks", "",
             markdown_table(["task", "sub-task", "questions", "accuracy", "unparsed", "failed",
                             "answered accuracy", "loglik / generate"],
                            [[*_task_title(sub), t["questions"], _pct(t["accuracy"]), t["unparsed"],
                              t["errors"], _pct(t["answered_accuracy"]),
                              f"{t['modes']['loglik']} / {t['modes']['generate']}"]
                             for sub, t in summary["sub_tasks"].items()])]
    for title, key, col in (("Number of images", "num_images", "images"),
                            ("FaceXBench categories (the JSON files' `category`)", "categories", "category"),
                            ("Files", "files", "file")):
        lines += ["", f"## {title}", "",
                  markdown_table([col, "questions", "accuracy", "unparsed", "failed"],
                                 [[k, t["questions"], _pct(t["accuracy"]), t["unparsed"], t["errors"]]
                                  for k, t in summary[key].items()])]
    if summary["error_examples"]:
        lines += ["", "## Failed questions (first 20)", ""] + [f"* {e}" for e in summary["error_examples"]]
    return "\n".join(lines) + "\n"


def plots(summary: dict[str, Any], model: str, out_dir: Path) -> list[Path]:
    """bar.png (accuracy per sub-task, unparsed share stacked) and radar.png (>= 3 sub-tasks)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    subs = list(summary["sub_tasks"])
    names = [TASKS.get(s, ("", s))[1] or s for s in subs]
    acc = [summary["sub_tasks"][s]["accuracy"] or 0.0 for s in subs]
    unp = [100.0 * summary["sub_tasks"][s]["unparsed"] / max(summary["sub_tasks"][s]["questions"], 1)
           for s in subs]
    written = []
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(subs) + 2), 4))
    x = np.arange(len(subs))
    ax.bar(x, acc, color="#3b6ea8", label="accuracy")
    ax.bar(x, unp, bottom=acc, color="#d9a441", label="unparsed")
    ax.axhline(25, color="grey", ls="--", lw=1, label="chance (4 options)")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of questions")
    ax.set_title(f"{model}: overall {_pct(summary['overall']['accuracy'])}%")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out_dir / "bar.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    if len(subs) >= 3:
        fig = radar_figure(names, acc, model)
        written.append(out_dir / "radar.png")
        fig.savefig(written[-1], dpi=120, bbox_inches="tight")
        plt.close(fig)
    return written


def radar_figure(names: Sequence[str], acc: Sequence[float], title: str) -> Any:
    """Accuracy per sub-task on spokes from the top, clockwise. The sub-task names sit outside the
    100 % ring, aligned away from the centre, and the % ticks sit between the first two spokes on a
    white ground, so no label is drawn over the grid or the accuracy line."""
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    ang = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    fig = plt.figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot(polar=True)
    ax.set_theta_offset(np.pi / 2)
    ax.set_theta_direction(-1)
    ax.plot(np.r_[ang, ang[:1]], np.r_[acc, acc[:1]], color="#3b6ea8")
    ax.fill(np.r_[ang, ang[:1]], np.r_[acc, acc[:1]], color="#3b6ea8", alpha=0.25)
    ax.set_ylim(0, 100)
    ax.set_xticks(ang, [""] * len(names))
    for a, name in zip(ang, names):
        x, y = np.sin(a), np.cos(a)  # where the spoke points on the page (top = 0, clockwise)
        ax.text(a, 112, textwrap.fill(name, 16), fontsize=8, va="center" if abs(y) < 0.3 else
                ("bottom" if y > 0 else "top"), ha="center" if abs(x) < 0.3 else
                ("left" if x > 0 else "right"))
    ax.set_rlabel_position(float(np.degrees(ang[1] / 2)))
    ax.set_yticks([25, 50, 75, 100], ["25", "50", "75", ""], fontsize=7, color="grey")  # 100: the rim
    for t in ax.get_yticklabels():
        t.set_bbox({"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    ax.set_title(f"{title}: accuracy (%) per sub-task", pad=40)
    return fig


def write_report(records: Sequence[dict], model: str, config: dict[str, Any], out_dir: Path,
                 make_plots: bool = True) -> dict[str, Any]:
    """report.md, results.json, config.json and the PNGs in out_dir; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(records)
    (out_dir / "config.json").write_text(stamped_json(config, indent=2) + "\n", encoding="utf-8")
    (out_dir / "results.json").write_text(stamped_json({"model": model, **summary}, indent=2) + "\n",
                                          encoding="utf-8")
    (out_dir / "report.md").write_text(markdown(summary, model, config.get("mcq", config)),
                                       encoding="utf-8")
    if make_plots and records:
        plots(summary, model, out_dir)
    return summary
