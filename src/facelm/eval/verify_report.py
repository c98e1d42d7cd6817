"""The `facelm eval verify` report: report.md, results.json, config.json, roc.png, fairness.png."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..schema_version import dumps as stamped_json
from .fairness import wilson
from .metrics_report import markdown_table

MODEL_NAMES = {"fused": "fused (shipped)", "sface": "SFace", "dlib": "dlib ResNet"}


def _f(x: Any, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _protocol_md(v: dict[str, Any]) -> list[str]:
    any_res = next(iter(v["protocol"].values()))
    fars = list(any_res["tar_at_far"])
    lines = [f"{v['pairs']} pairs ({any_res['same']} same, {any_res['different']} different); "
             f"{v['failed']} with a failed photo (scored as rejections). Folds: {v['folds']}.", "",
             markdown_table(
                 ["model", "accuracy (mean ± std over folds)", "ROC AUC", "EER",
                  *(f"TAR@FAR={t}" for t in fars)],
                 [[MODEL_NAMES.get(name, name), f"{r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}",
                   f"{r['roc_auc']:.4f}", f"{r['eer']:.4f}", *(_f(r["tar_at_far"][t]) for t in fars)]
                  for name, r in v["protocol"].items()])]
    if any_res["different"] < 1000:
        lines += ["", f"With {any_res['different']} different-person pairs FAR moves in steps of "
                  f"{any_res['far_resolution']:.4f}: TAR@FAR=0.001 means no false accept at all and is noisy."]
    lines += ["", "Thresholds per held-out fold (fused): "
              + ", ".join(f"{t:.4f}" for t in v["protocol"]["fused"]["fold_thresholds"]), "",
              "![ROC](roc.png)"]
    if v["failed_examples"]:
        lines += ["", "Failed pairs (first 10):", ""] + [f"* {e}" for e in v["failed_examples"]]
    return lines


def _gaps_md(gaps: list[dict[str, Any]]) -> list[str]:
    if not gaps:
        return ["", "Gap: fewer than two groups large enough to compare."]
    return ["", "Gaps (best − worst group): " + "; ".join(
        f"{g['metric']} {g['gap']:.4f} ({g['best']} vs {g['worst']})" for g in gaps) + "."]


def _rate(r: dict[str, Any], key: str) -> str:
    ci = r.get(f"{key}_ci95")
    return _f(r[key]) + (f" ({ci[0]:.4f}–{ci[1]:.4f})" if ci else "")


def _ratio_md(r: dict[str, Any] | None) -> list[str]:
    if not r:
        return []
    if r["ratio"] is None:
        return ["", f"FAR ratio worst/best: unbounded ({r['best']} has no false accept; {r['worst']} worst)."]
    ci = r.get("ratio_ci95")
    span = f" (95 % interval {ci[0]:.2f}–{ci[1]:.2f})" if ci else " (interval unbounded: the best group's FAR is often 0 in resamples)"
    return ["", f"FAR ratio worst/best: {r['ratio']:.2f}× ({r['worst']} vs {r['best']}){span}."]


def _fairness_md(v: dict[str, Any]) -> list[str]:
    lines = ["## Verification by demographic group", "",
             "Accuracy, FAR and FRR at each pair's held-out-fold threshold (fused score); ROC AUC "
             "within the group. A pair belongs to a group when both photos do; 'mixed' pairs are "
             "listed but not compared."]
    for attribute, fr in v["fairness"].items():
        src = ("from the CSV's labels" if fr["source"] == "labels" else
               "ESTIMATED by facelm's own attribute heads, not ground truth")
        lines += ["", f"### {attribute} (groups {src})", ""]
        lines.append(markdown_table(
            ["group", "pairs", "same", "different", "accuracy", "FAR (95 % CI)", "FRR (95 % CI)", "ROC AUC"],
            [[g, r["pairs"], r["same"], r["different"], _f(r["accuracy"]), _rate(r, "far"),
              _rate(r, "frr"), _f(r["roc_auc"])] for g, r in fr["groups"].items()]))
        lines += _gaps_md(fr["gaps"]) + _ratio_md(fr.get("far_ratio"))
    if v.get("race_note"):
        lines += ["", f"Race: {v['race_note']}."]
    return lines


def _attributes_md(a: dict[str, Any]) -> list[str]:
    o = a["overall"]
    lines = ["## Attribute accuracy by demographic group", "",
             f"{a['photos']} labelled photos, {a['failed']} failed (no face / unreadable; left out). "
             "Groups come from the labels; the estimates are facelm's age, gender and expression "
             "models. Age-group accuracy uses FaceXBench's nine groups (0-2, 3-9, 10-19, ..., 70+); "
             "groups below use coarse bands (0-19, 20-39, 40-59, 60+).", "",
             f"Overall: gender accuracy {_f(o['gender_accuracy'])}, age MAE {_f(o['age_mae'], 2)} years, "
             f"age-group accuracy {_f(o['age_group_accuracy'])}, race accuracy "
             f"{_f(o.get('race_accuracy'))}, expression accuracy {_f(o['expression_accuracy'])}."]
    for attribute, block in a["by"].items():
        lines += ["", f"### by {attribute} (labels)", ""]
        lines.append(markdown_table(
            ["group", "photos", "gender accuracy", "age MAE (years)", "age-group accuracy",
             "race accuracy", "expression accuracy"],
            [[g, r["photos"], _f(r["gender_accuracy"]), _f(r["age_mae"], 2), _f(r["age_group_accuracy"]),
              _f(r.get("race_accuracy")), _f(r["expression_accuracy"])] for g, r in block["groups"].items()]))
        lines += _gaps_md(block["gaps"])
    if "race" not in a["by"]:
        lines += ["", "No race breakdown: the labels have no race column."]
    return lines


Bar = tuple[str, float, int, list[float]]   # label "group (n=N)", rate, n, 95 % interval


def _bars(groups: dict[str, dict], rate: str, count: str) -> list[Bar]:
    out = []
    for g, r in groups.items():
        v, n = r.get(rate), r.get(count)
        if g == "unknown" or v is None or not n:
            continue
        out.append((f"{g} (n={n})", float(v), int(n), wilson(round(v * n), n)))
    return out


def fairness_panels(report: dict[str, Any]) -> list[tuple[str, list[Bar]]]:
    """The fairness chart's panels: verification accuracy per group (n = pairs) and gender
    accuracy per group (n = photos with a gender label), each with its Wilson 95 % interval."""
    panels = []
    for attribute, fr in report.get("verification", {}).get("fairness", {}).items():
        panels.append((f"verification accuracy by {attribute} ({fr['source']})",
                       _bars(fr["groups"], "accuracy", "pairs")))
    for attribute, block in report.get("attributes", {}).get("by", {}).items():
        panels.append((f"gender accuracy by {attribute} (labels)",
                       _bars(block["groups"], "gender_accuracy", "gender_photos")))
    return [p for p in panels if p[1]]


def fairness_plot(report: dict[str, Any], path: Path) -> bool:
    """Bars of the headline metric per group, with n in each label and the 95 % interval as an
    error bar. The axis runs from 0 so bar lengths compare; a 1-pair group shows a wide interval
    instead of looking like a 184-pair one."""
    panels = fairness_panels(report)
    if not panels:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    height = 0.6 + 0.45 * sum(len(bars) + 2 for _, bars in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(6.5, height), squeeze=False)
    for ax, (title, bars) in zip(axes[:, 0], panels):
        v = np.array([b[1] for b in bars])
        ci = np.array([b[3] for b in bars])
        y = np.arange(len(bars))
        ax.barh(y, v, color="#8fb3d9", xerr=[np.maximum(v - ci[:, 0], 0), np.maximum(ci[:, 1] - v, 0)], ecolor="#222222", capsize=3)
        ax.set_yticks(y, [b[0] for b in bars], fontsize=8)
        ax.invert_yaxis()  # groups top to bottom in the report's order
        ax.set_xlim(0.0, 1.25)  # from 0; the room right of 1 holds the value labels
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set_title(title + "; lines: 95 % Wilson interval", fontsize=9)
        for i, (val, hi) in enumerate(zip(v, ci[:, 1])):
            ax.text(hi + 0.01, i, f"{val:.3f}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_verify_report(report: dict[str, Any], out: Path) -> None:
    (out / "config.json").write_text(stamped_json(report["config"], indent=2) + "\n", encoding="utf-8")
    (out / "results.json").write_text(stamped_json(report, indent=2) + "\n", encoding="utf-8")
    lines = ["# Verification protocol and fairness", ""]
    if "verification" in report:
        lines += ["## Protocol", ""] + _protocol_md(report["verification"]) + [""]
        lines += _fairness_md(report["verification"]) + [""]
    if "attributes" in report:
        lines += _attributes_md(report["attributes"]) + [""]
    if fairness_plot(report, out / "fairness.png"):
        lines += ["![fairness](fairness.png)", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
