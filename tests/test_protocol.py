"""The k-fold verification protocol on known score sets, fairness breakdowns, and `facelm eval
verify` end to end on real LFW pairs and UTKFace labels."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from facelm.cli import main
from facelm.errors import InputFormatError
from facelm.eval.fairness import attributes_by_group, pair_groups, verification_by_group
from facelm.eval.protocol import assign_folds, kfold_accuracy, verification_metrics
from facelm.eval.verification import best_threshold


def _separable(n_folds: int = 10, per_class: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.tile(np.r_[np.ones(per_class), np.zeros(per_class)], n_folds).astype(int)
    scores = np.where(labels == 1, 0.8, 0.2).astype(float)
    folds = np.repeat(np.arange(n_folds), 2 * per_class)
    return scores, labels, folds


def test_assign_folds_stratified_blocks_and_given_column() -> None:
    labels = np.r_[np.ones(50), np.zeros(50)].astype(int)
    f = assign_folds(labels, None, 10)
    for k in range(10):
        assert (labels[f == k] == 1).sum() == 5 and (labels[f == k] == 0).sum() == 5
    assert list(f[:5]) == [0] * 5  # contiguous in file order
    given = [str(i % 3 + 1) for i in range(100)]
    assert sorted(set(assign_folds(labels, given).tolist())) == [0, 1, 2]
    assert assign_folds(labels, [""] * 100, 4).max() == 3   # an empty column: folds assigned
    with pytest.raises(InputFormatError, match="empty fold"):
        assign_folds(labels, ["1"] * 99 + [""])


def test_kfold_on_a_known_score_set() -> None:
    scores, labels, folds = _separable()
    # one different-person pair in fold 3 scores like a match: only that fold loses it
    i = np.flatnonzero((folds == 3) & (labels == 0))[0]
    scores[i] = 0.9
    r = kfold_accuracy(scores, labels, folds)
    assert r["fold_accuracies"] == [1.0] * 3 + [0.9] + [1.0] * 6
    assert r["accuracy_mean"] == pytest.approx(0.99)
    assert r["accuracy_std"] == pytest.approx(0.03)   # population std of nine 1.0 and one 0.9
    # each threshold comes from the other nine folds only
    for k, thr in enumerate(r["fold_thresholds"]):
        assert thr == best_threshold(scores[folds != k], labels[folds != k])
    assert r["predictions"][i] and r["predictions"].sum() == 51


def test_threshold_is_not_fitted_on_the_held_out_fold() -> None:
    # fold 0's pairs sit where the other folds put no threshold: a cheating protocol would get 1.0
    scores, labels, folds = _separable()
    scores[(folds == 0) & (labels == 1)] = 0.45
    scores[(folds == 0) & (labels == 0)] = 0.40
    r = kfold_accuracy(scores, labels, folds)
    assert r["fold_accuracies"][0] == 0.5 and r["fold_accuracies"][1:] == [1.0] * 9


def test_roc_figures_on_known_scores() -> None:
    scores, labels, folds = _separable()
    m = verification_metrics(scores, labels, folds)
    assert (m["roc_auc"], m["eer"], m["tar_at_far"]["0.01"], m["accuracy_mean"]) == (1.0, 0.0, 1.0, 1.0)
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=400) + np.r_[np.ones(200), np.zeros(200)], np.r_[np.ones(200), np.zeros(200)].astype(int)
    m = verification_metrics(s, y, assign_folds(y, None, 10))
    pos, neg = s[y == 1], s[y == 0]
    assert m["roc_auc"] == pytest.approx(np.mean(pos[:, None] > neg[None, :]))   # Mann-Whitney
    thr = np.sort(neg)[-2]                                                          # FAR = 1/200 < 1e-2
    assert m["tar_at_far"]["0.01"] >= np.mean(pos > thr)
    far_at_eer = m["eer"]
    assert 0.2 < far_at_eer < 0.4 and m["far_resolution"] == 1 / 200
    with pytest.raises(InputFormatError, match="same label"):
        verification_metrics(s[:10], np.ones(10, int), np.arange(10))


def test_pair_groups_labels_estimates_and_no_race() -> None:
    side = lambda g, a: {"attributes": {"gender": g, "age": a}}  # noqa: E731
    recs = [{"a": side("male", 30), "b": side("male", 35)}, {"a": side("male", 30), "b": side("female", 70)}]
    assert pair_groups(recs, "gender") == (["male", "mixed"], "estimated")
    assert pair_groups(recs, "age") == (["20-39", "mixed"], "estimated")
    assert pair_groups(recs, "race") is None            # the old estimator: no race estimate
    raced = lambda r: {"attributes": {"gender": "male", "age": 30, "race": r}}  # noqa: E731
    est = [{"a": raced("Black"), "b": raced("Black")}, {"a": raced("Black"), "b": raced("White")}]
    assert pair_groups(est, "race") == (["Black", "mixed"], "estimated")
    labelled = [{**r, "race_a": "Black", "race_b": "Black", "gender": "F"} for r in recs]
    assert pair_groups(labelled, "race") == (["Black", "Black"], "labels")
    assert pair_groups(labelled, "gender") == (["female", "female"], "labels")


def test_verification_by_group_and_gap() -> None:
    groups = ["x"] * 20 + ["y"] * 20 + ["mixed"] * 4
    labels = np.array([1, 0] * 22)
    pred = labels.astype(bool).copy()
    pred[20:30] = ~pred[20:30]          # y: 10 of 20 wrong (5 false accepts, 5 false rejects)
    pred[40:44] = ~pred[40:44]          # mixed: all wrong, but never part of the gap
    r = verification_by_group(groups, labels, pred, labels.astype(float), min_count=10)
    assert r["groups"]["y"]["accuracy"] == 0.5 and r["groups"]["y"]["far"] == 0.5
    acc_gap = next(g for g in r["gaps"] if g["metric"] == "accuracy")
    assert (acc_gap["best"], acc_gap["worst"], acc_gap["gap"]) == ("x", "y", 0.5)
    assert verification_by_group(groups, labels, pred, labels.astype(float), min_count=21)["gaps"] == []


def test_attributes_by_group_from_labels() -> None:
    rows = ([{"label": {"gender": "female", "age": "25", "race": "Asian"},
              "est": {"gender": "female", "age": 27.0, "expression": "happy"}}] * 3
            + [{"label": {"gender": "male", "age": "65", "race": "White"},
                "est": {"gender": "female", "age": 55.0, "expression": "neutral"}}] * 3)
    r = attributes_by_group(rows, min_count=2)
    assert r["overall"]["gender_accuracy"] == 0.5 and r["overall"]["age_mae"] == pytest.approx(6.0)
    by_race = r["by"]["race"]
    assert by_race["groups"]["Asian"]["age_group_accuracy"] == 1.0
    assert by_race["groups"]["White"]["age_group_accuracy"] == 0.0
    mae_gap = next(g for g in by_race["gaps"] if g["metric"] == "age_mae")
    assert (mae_gap["best"], mae_gap["worst"], mae_gap["gap"]) == ("Asian", "White", pytest.approx(8.0))


def test_eval_verify_end_to_end(tmp_path: Path, lfw_dir: Path, lfw_pairs: list[dict], utk_dir: Path) -> None:
    test = [p for p in lfw_pairs if p["set"] == "view1_test"]
    rows = [p for p in test if p["same"] == "1"][:6] + [p for p in test if p["same"] == "0"][:5]
    rows.append({**rows[0], "file_b": "images/nobody/missing.jpg"})   # a failing photo
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "report"
    assert main(["eval", "verify", "--pairs", str(pairs), "--root", str(lfw_dir), "--folds", "4",
                 "--labels", str(utk_dir / "labels.csv"), "--limit", "12", "--min-group", "2",
                 "--workers", "1", "--out", str(out), "--quiet"]) == 0
    for name in ("report.md", "results.json", "config.json", "roc.png", "pairs.jsonl", "attributes.jsonl"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    v = res["verification"]
    assert v["pairs"] == 12 and v["failed"] == 1 and "missing.jpg" in v["failed_examples"][0]
    assert set(v["protocol"]) == {"fused", "sface", "dlib"}
    assert len(v["protocol"]["fused"]["fold_accuracies"]) == 4
    # the failed same-person pair is a rejection: 6 of 7 matches ranked above every non-match
    assert v["protocol"]["fused"]["roc_auc"] == pytest.approx(6 / 7)
    assert v["fairness"]["gender"]["source"] == "estimated"
    # estimated race groups come with the race head's measured accuracy, in JSON and the report
    assert v["fairness"]["race"]["source"] == "estimated" and "race head" in v["race_note"]
    a = res["attributes"]
    assert a["photos"] == 12 and set(a["by"]) >= {"gender", "race"}
    assert 0 <= a["overall"]["race_accuracy"] <= 1
    md = (out / "report.md").read_text()
    assert "ESTIMATED" in md and "mean ± std" in md and "race head" in md


def test_eval_verify_input_errors(tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("file_a,file_b\na.jpg,b.jpg\n")
    assert main(["eval", "verify", "--pairs", str(bad), "--out", str(tmp_path / "o")]) == 2
    one_class = tmp_path / "q.csv"
    one_class.write_text("file_a,file_b,same\na.jpg,b.jpg,1\nc.jpg,d.jpg,1\n")
    assert main(["eval", "verify", "--pairs", str(one_class), "--out", str(tmp_path / "o")]) == 2
    assert main(["eval", "verify", "--out", str(tmp_path / "o")]) == 2


def test_attribute_metrics_read_exact_ages_and_fairface_bins() -> None:
    from facelm.eval.fairness import age_label, attributes_by_group
    assert age_label("34") == (34.0, 34.0) and age_label("20-29") == (20.0, 29.0)
    assert age_label("more than 70") == (70.0, 200.0) and age_label("") is None and age_label("nan") is None
    rows = [{"label": {"age": "20-29", "gender": "male"}, "est": {"age": 25.0, "gender": "male", "expression": "happy"}},
            {"label": {"age": "20-29", "gender": "male"}, "est": {"age": 41.0, "gender": "male", "expression": "happy"}},
            {"label": {"age": "30", "gender": "female"}, "est": {"age": 33.0, "gender": "male", "expression": "happy"}}]
    o = attributes_by_group(rows, min_count=1)["overall"]
    assert o["age_mae"] == 3.0 and o["age_group_accuracy"] == pytest.approx(2 / 3)


def test_eval_verify_under_fsn_records_it_and_never_mixes_modes(tmp_path: Path, lfw_dir: Path,
                                                                 lfw_pairs: list[dict], monkeypatch) -> None:
    from facelm import score_norm
    test = [p for p in lfw_pairs if p["set"] == "view1_test"]
    rows = [p for p in test if p["same"] == "1"][:2] + [p for p in test if p["same"] == "0"][:2]
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    args = ["eval", "verify", "--pairs", str(pairs), "--root", str(lfw_dir), "--folds", "2",
            "--workers", "1", "--quiet", "--out"]
    monkeypatch.delenv(score_norm.ENV, raising=False)
    assert main([*args, str(tmp_path / "plain")]) == 0
    monkeypatch.setenv(score_norm.ENV, "fsn-v1")
    before = (tmp_path / "plain" / "pairs.jsonl").read_bytes()
    assert main([*args, str(tmp_path / "plain")]) == 2            # plain scores are not resumed as FSN
    assert (tmp_path / "plain" / "pairs.jsonl").read_bytes() == before
    assert main([*args, str(tmp_path / "fsn")]) == 0
    assert json.loads((tmp_path / "fsn" / "config.json").read_text())["score_norm"] == "fsn-v1"
    recs = [json.loads(line) for line in (tmp_path / "fsn" / "pairs.jsonl").read_text().splitlines()]
    plain = [json.loads(line) for line in before.decode().splitlines()]
    assert {r["threshold"] for r in recs} == {score_norm.load().threshold}
    assert any(abs(r["score"] - p["score"]) > 1e-3 for r, p in zip(recs, plain))
