"""Opt-in fair score normalisation (FACELM_SCORE_NORM=fsn-v1) on real LFW and UTKFace photos."""
from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from facelm import calibration as cal
from facelm import score_norm
from facelm.errors import FaceLMError
from facelm.faces import analyze
from facelm.verify import compare_analyses, fused_score, identity_verdict, probability


@pytest.fixture(scope="module")
def pairs(lfw_pairs, lfw_dir):
    """6 same and 6 different held-out View 1 test pairs, analysed (identity only)."""
    rows = [r for r in lfw_pairs if r["set"] == "view1_test"]
    pick = [r for r in rows if r["same"] == "1"][:6] + [r for r in rows if r["same"] == "0"][:6]
    cache: dict = {}

    def get(f):
        if f not in cache:
            cache[f] = analyze(lfw_dir / f, fast=True)
        return cache[f]
    return [(int(r["same"]), get(r["file_a"]), get(r["file_b"])) for r in pick]


def _hand_offset(f: score_norm.Fsn, emb: dict) -> float:
    """Nearest centroid by Euclidean distance, written independently of score_norm.nearest."""
    v = np.r_[np.sqrt(cal.W_SFACE) * np.asarray(emb["sface"]), np.sqrt(cal.W_DLIB) * np.asarray(emb["dlib"])]
    return float(f.offsets[np.argmin(np.linalg.norm(f.centroids - v, axis=1))])


def test_off_by_default_and_the_fused_score_is_unchanged(pairs, monkeypatch):
    monkeypatch.delenv(score_norm.ENV, raising=False)
    _, a, b = pairs[0]
    c = compare_analyses(a, b)
    assert c.score == pytest.approx(fused_score(c.scores["sface"], c.scores["dlib"]))
    assert c.threshold == cal.THRESHOLD


def test_fsn_subtracts_half_of_each_faces_cluster_offset(pairs, monkeypatch):
    monkeypatch.setenv(score_norm.ENV, "fsn-v1")
    f = score_norm.load()
    right, moved = 0, 0
    for y, a, b in pairs:
        c = compare_analyses(a, b)
        raw = fused_score(c.scores["sface"], c.scores["dlib"])
        want = raw - 0.5 * (_hand_offset(f, a.embeddings) + _hand_offset(f, b.embeddings))
        assert c.score == pytest.approx(want, abs=1e-9)
        assert c.threshold == f.threshold and c.same == (c.score >= f.threshold)
        assert c.probability == pytest.approx(probability(c.score, f.threshold, f.platt_a))
        v = identity_verdict(a.embeddings, b.embeddings)   # the batch path agrees
        assert v["score"] == pytest.approx(c.score, abs=1e-4) and v["same"] == c.same
        right += c.same == bool(y)
        moved += abs(c.score - raw) > 1e-4
    assert right >= 11 and moved >= 6       # still verifies; the offsets do move scores
    assert probability(f.threshold, f.threshold, f.platt_a) == pytest.approx(0.5)


def test_a_users_threshold_still_wins(pairs, monkeypatch):
    monkeypatch.setenv(score_norm.ENV, "fsn-v1")
    _, a, b = pairs[0]
    assert compare_analyses(a, b, threshold=0.5).threshold == 0.5


def test_unknown_mode_is_refused_by_name(pairs, monkeypatch):
    monkeypatch.setenv(score_norm.ENV, "zscore")
    _, a, b = pairs[0]
    with pytest.raises(FaceLMError, match="FACELM_SCORE_NORM='zscore'"):
        compare_analyses(a, b)


def test_shipped_file_matches_the_calibration_and_refuses_other_weights(tmp_path):
    f = score_norm.load()
    assert f.centroids.shape == (f.card["clusters"], 256) and len(f.offsets) == f.card["clusters"]
    assert f.card["weights"] == [cal.W_SFACE, cal.W_DLIB] and 0 < f.threshold < 1
    other = dataclasses.replace(f, card={**f.card, "weights": [0.5, 0.5]})
    score_norm.save(tmp_path / "other.npz", other)
    with pytest.raises(FaceLMError, match="refit it"):
        score_norm.load(tmp_path / "other.npz")
    cut = tmp_path / "cut.npz"    # a truncated file: one clear error naming it, not a zipfile trace
    cut.write_bytes(score_norm.SHIPPED.read_bytes()[:4000])
    with pytest.raises(FaceLMError, match="cannot be read") as err:
        score_norm.load(cut)
    assert str(cut) in str(err.value)


def test_crowded_regions_get_the_higher_bar_children_over_adults(utk_dir):
    """FSN's mechanism on labelled faces: infants, whose impostors score high, get larger offsets
    than adults (utkface-dev is not the cohort it was fitted on)."""
    with open(utk_dir / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    f = score_norm.load()

    def offsets(keep) -> list[float]:
        out = []
        for r in (r for r in rows if keep(float(r["age"]))):
            try:
                out.append(score_norm.offset(f, analyze(utk_dir / r["file"], fast=True).embeddings))
            except FaceLMError:
                continue
            if len(out) == 15:
                return out
        return out
    kids, adults = offsets(lambda a: a <= 5), offsets(lambda a: 25 <= a <= 45)
    assert len(kids) == len(adults) == 15
    assert np.mean(kids) > np.mean(adults) + 0.03
