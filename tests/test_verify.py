"""Verification: calibrated operating point on real LFW View 1 test pairs, metrics, results."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelm import calibration as cal
from facelm.eval.verification import accuracy_at, best_threshold, eer, roc_auc, tar_at_far
from facelm.faces import analyze
from facelm.verify import compare_analyses, fused_score, probability

RECORD = Path(__file__).resolve().parents[1] / "docs" / "calibration" / "lfw_view1.json"


def test_shipped_constants_equal_the_calibration_record():
    rec = json.loads(RECORD.read_text())
    assert cal.THRESHOLD == pytest.approx(rec["threshold"], abs=1e-4)
    assert cal.W_SFACE == pytest.approx(rec["weights"]["sface"], abs=1e-4)
    assert cal.W_DLIB == pytest.approx(rec["weights"]["dlib"], abs=1e-4)
    assert cal.PLATT_A == pytest.approx(rec["platt"]["a"], abs=1e-4)
    assert cal.THRESHOLD_SFACE == pytest.approx(rec["models"]["sface"]["threshold"], abs=1e-4)
    assert "view1_train" in rec["data"] and "view2" not in rec["data"].lower()
    # the target: fusion at least as accurate as the best single model on held-out pairs
    m = rec["models"]
    assert m["fused"]["test_accuracy"] >= max(m["sface"]["test_accuracy"], m["dlib"]["test_accuracy"])
    # Platt scaling centred on the threshold: even odds there, so verdict and probability agree
    assert cal.PLATT_B == 0 and probability(cal.THRESHOLD) == pytest.approx(0.5)
    assert probability(cal.THRESHOLD - 0.1) < 0.05 and probability(cal.THRESHOLD + 0.1) > 0.95


@pytest.fixture(scope="module")
def test_pairs(lfw_pairs, lfw_dir):
    """40 same and 40 different held-out View 1 test pairs, analysed (identity only)."""
    rows = [r for r in lfw_pairs if r["set"] == "view1_test"]
    pick = [r for r in rows if r["same"] == "1"][:40] + [r for r in rows if r["same"] == "0"][:40]
    cache: dict = {}

    def get(f):
        if f not in cache:
            cache[f] = analyze(lfw_dir / f, fast=True)
        return cache[f]
    return [(int(r["same"]), compare_analyses(get(r["file_a"]), get(r["file_b"]))) for r in pick]


def test_same_pairs_score_above_and_different_below_the_threshold(test_pairs):
    same = [c for y, c in test_pairs if y == 1]
    diff = [c for y, c in test_pairs if y == 0]
    assert np.mean([c.same for c in same]) >= 0.9
    assert np.mean([not c.same for c in diff]) >= 0.9
    assert np.median([c.probability for c in same]) > 0.8 > 0.2 > np.median([c.probability for c in diff])
    for _, c in test_pairs:
        assert c.score == pytest.approx(fused_score(c.scores["sface"], c.scores["dlib"]))
        assert c.same == (c.score >= c.threshold) and 0 <= c.confidence <= 1


def test_comparison_is_json_serialisable_with_differences(test_pairs):
    c = test_pairs[0][1]
    d = json.loads(json.dumps(c.to_dict()))
    assert {"same", "score", "threshold", "probability", "scores", "differences", "a", "b"} <= set(d)
    # the gap of the stated whole-degree yaws, as the explanation texts state it
    assert d["differences"]["yaw_gap"] == abs(round(c.a.pose.yaw) - round(c.b.pose.yaw))
    assert d["differences"]["age_gap"] is None  # fast mode measured no ages


def test_differences_reflect_measurements(portrait_path):
    import cv2
    from facelm.imageio import load_rgb
    rgb = load_rgb(portrait_path)
    a = analyze(rgb)
    dark = analyze(cv2.GaussianBlur((rgb * 0.5).astype(np.uint8), (0, 0), 2))
    c = compare_analyses(a, dark)
    assert c.same  # the same photo, darker and blurred
    assert c.differences.brightness_gap > 0.15 and c.differences.sharpness_ratio > 2
    assert c.differences.gender_match is not None and c.differences.age_gap is not None


def test_metrics_on_hand_checked_examples():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 1, 0, 1, 0, 0])
    # 9 positive-negative pairs, 8 ordered correctly -> AUC 8/9
    assert roc_auc(s, y) == pytest.approx(8 / 9)
    assert tar_at_far(s, y, 0.0) == pytest.approx(2 / 3)
    assert tar_at_far(s, y, 1 / 3) == pytest.approx(1.0)
    assert accuracy_at(s, y, 0.75) == pytest.approx(5 / 6)
    assert best_threshold(s, y) in (pytest.approx(0.75), pytest.approx(0.55))
    assert eer(s, y) == pytest.approx(1 / 3, abs=1e-9)
    # ties are one ROC point, so a constant score has AUC 0.5
    assert roc_auc(np.ones(4), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
