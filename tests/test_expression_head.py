"""The expression head on real LFW photos of identities it was not fitted on: it beats the fer
model it refines, ships with its card, and the old estimator still gives fer's own answer."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from facelm.faces.analysis import analyze
from facelm.faces.expression_head import normalised_landmarks, shipped

WORDS = {"happiness": "happy", "neutral": "neutral"}


def _held_out(lfw_dir: Path, n: int) -> list[tuple[str, str]]:
    """n labelled photos whose identity hashes into the head's test split (sha1 % 10 >= 8)."""
    with open(lfw_dir / "expressions.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["expression"] in WORDS]
    test = [r for r in rows if int(hashlib.sha1(Path(r["file"]).parent.name.encode()).hexdigest(), 16) % 10 >= 8]
    happy = [r for r in test if r["expression"] == "happiness"][: n // 2]
    neutral = [r for r in test if r["expression"] == "neutral"][: n // 2]
    return [(str(lfw_dir / r["file"]), WORDS[r["expression"]]) for r in happy + neutral]


def test_shipped_head_card_says_it_beats_fer_on_held_out_identities() -> None:
    head = shipped()
    assert head is not None
    acc = head[1]["test_accuracy"]
    assert acc["head"] >= acc["fer"] + 0.05 and acc["head"] > acc["majority"]
    assert head[0]["w"].shape[0] == 7 and head[0]["mean"].shape == head[0]["w"].shape[1:]


def test_head_beats_fer_on_real_held_out_photos(lfw_dir: Path, monkeypatch) -> None:
    photos = _held_out(lfw_dir, 30)
    assert len(photos) == 30
    monkeypatch.setenv("FACELM_ATTRIBUTES", "heads-v1")
    new = [analyze(p).attributes for p, _ in photos]
    monkeypatch.setenv("FACELM_ATTRIBUTES", "dlib-v1")
    old = [analyze(p).attributes for p, _ in photos]
    truth = [label for _, label in photos]
    acc = lambda ats: np.mean([a.expression == t for a, t in zip(ats, truth)])  # noqa: E731
    assert acc(new) > acc(old) and acc(new) >= 0.75
    assert all(abs(sum(a.expression_probs.values()) - 1) < 1e-6 for a in new)


def test_landmarks_are_normalised_for_position_scale_and_roll() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(50, 150, (68, 2))
    angle, scale, shift = 0.4, 2.5, np.array([30.0, -12.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (pts @ rot.T) * scale + shift
    assert normalised_landmarks(moved) == pytest.approx(normalised_landmarks(pts), abs=1e-9)
