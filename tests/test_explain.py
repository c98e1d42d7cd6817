"""facelm.explain on real photos analysed by the real models: verdicts, grounding, hedges, seeds."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelm import calibration as cal
from facelm.explain import (ASPECT_TITLES, ASPECTS, PairExplanation, describe_all, describe_face,
                            explain_pair, quality_flags)
from facelm.explain.evidence import GEOMETRY_REFERENCE
from facelm.explain.phrasing import pct, sim, word_count
from facelm.faces.analysis import analyze
from facelm.faces.types import FaceAnalysis
from facelm.verify import compare_analyses

SAME_PHRASE, DIFF_PHRASE = "same person", "different people"
# Numbers the templates may state that are not measurements: "over 99%" / "under 1%", the 68
# landmarks, 10th-90th percentiles, the 86 reference faces, "3D".
FIXED_NUMBERS = {"99", "1", "68", "10", "90", "86", "3"}


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def faces(lfw_dir: Path, lfw_pairs: list[dict], portrait_path: Path, faceapi_dir: Path,
          utk_dir: Path) -> dict:
    """Every real photo the tests use, analysed once."""
    test_rows = [r for r in lfw_pairs if r["set"] == "view1_test"]
    rows = ([r for r in test_rows if r["same"] == "1"][:2]
            + [r for r in test_rows if r["same"] == "0"][:2])
    pairs = [compare_analyses(analyze(lfw_dir / r["file_a"]), analyze(lfw_dir / r["file_b"]))
             for r in rows]
    img = _rgb(portrait_path)
    small = cv2.resize(img, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    with open(faceapi_dir / "labels.csv", newline="") as f:
        group = next(r["file"] for r in csv.DictReader(f) if r["kind"] == "group_photo")
    fast_a = analyze(lfw_dir / rows[0]["file_a"], fast=True)
    fast_b = analyze(lfw_dir / rows[2]["file_b"], fast=True)
    return {
        "pairs": pairs, "portrait": analyze(portrait_path),
        "mirrored": analyze(np.ascontiguousarray(img[:, ::-1])),
        "blurred": analyze(cv2.GaussianBlur(img, (0, 0), 3.0)),
        "small": analyze(small),
        "group": analyze(faceapi_dir / group),
        # UTKFace labels this child as 4 years old (file name convention age_gender_race_date).
        "child": analyze(utk_dir / "images" / "4_0_0_20170110232756133.jpg.chip.jpg"),
        "fast_a": fast_a, "fast_pair": compare_analyses(fast_a, fast_b),
    }


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text)


def _formats(x: float) -> set[str]:
    """The ways a measured value may be stated (whole, 1-2 decimals, percent), unsigned."""
    x = abs(float(x))
    return {str(int(round(x))), f"{x:.1f}", f"{x:.2f}", str(int(round(x * 100)))}


def _allowed(*objs) -> set[str]:
    """Every stated form of every number in the given measurements/evidence (walked recursively)."""
    out = set(FIXED_NUMBERS)

    def walk(o):
        if isinstance(o, bool) or o is None or isinstance(o, str):
            return
        if isinstance(o, (int, float)):
            out.update(_formats(o))
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)
        elif dataclasses.is_dataclass(o):
            walk(dataclasses.asdict(o))

    for o in objs:
        walk(o)
    from facelm.faces.attr_heads import shipped   # gender hedges cite the heads' measured table
    walk(shipped()[1]["gender_by_age_band"])
    return out


def _measured(cmp, ev: dict) -> set[str]:
    a, b = cmp.a, cmp.b
    return _allowed(ev, a.quality, b.quality, a.pose, b.pose, a.attributes, b.attributes,
                    a.geometry, b.geometry, cmp.differences, cmp.scores, cmp.score,
                    cmp.threshold, cmp.score - cmp.threshold, cmp.confidence,
                    cal.THRESHOLD_SFACE, cal.THRESHOLD_DLIB)


# ---- pair explanations --------------------------------------------------------------------------

def test_concise_states_the_decided_verdict_and_never_the_opposite(faces):
    verdicts = set()
    for cmp in faces["pairs"] + [faces["fast_pair"]]:
        e = explain_pair(cmp)
        said, opposite = (SAME_PHRASE, DIFF_PHRASE) if cmp.same else (DIFF_PHRASE, SAME_PHRASE)
        first = re.split(r"(?<=[.!?])\s", e.concise)[0]
        assert said in first, e.concise
        assert opposite not in e.concise and opposite not in e.detailed, (e.concise, e.detailed)
        assert e.detailed.startswith(f"Verdict: {said}")
        verdicts.add(cmp.same)
    # The chosen LFW pairs exercise both verdicts (two true matches, two true non-matches).
    assert verdicts == {True, False}


def test_word_counts_within_the_tiers(faces):
    for cmp in faces["pairs"] + [faces["fast_pair"]]:
        for seed in range(5):
            e = explain_pair(cmp, seed=seed)
            assert 35 <= word_count(e.concise) <= 65, e.concise
            assert 90 <= word_count(e.detailed) <= 170, e.detailed


def test_pair_numbers_are_rounded_measurements(faces):
    for cmp in faces["pairs"]:
        e = explain_pair(cmp, seed=3)
        assert sim(cmp.score) in e.concise and sim(cmp.threshold) in e.concise
        assert pct(cmp.confidence) in e.concise
        assert sim(cmp.scores["sface"]) in e.detailed and sim(cmp.scores["dlib"]) in e.detailed
        aa, ab = cmp.a.attributes, cmp.b.attributes
        assert f"{round(aa.age)} and {round(ab.age)}" in e.detailed
        allowed = _measured(cmp, e.evidence)
        for text in (e.concise, e.detailed):
            stray = [n for n in _numbers(text) if n not in allowed]
            assert not stray, (stray, text)


def test_evidence_records_the_stated_values_and_is_json(faces):
    cmp = faces["pairs"][0]
    e = explain_pair(cmp)
    assert isinstance(e, PairExplanation)
    ev = json.loads(json.dumps(e.to_dict()))["evidence"]
    assert ev["same"] == cmp.same and ev["score"] == round(cmp.score, 3)
    assert ev["scores"]["dlib"] == round(cmp.scores["dlib"], 3)
    assert ev["models_agree"] == cmp.models_agree
    assert ev["a"]["age"] == round(cmp.a.attributes.age)
    assert ev["yaw_gap"] == abs(round(cmp.a.pose.yaw) - round(cmp.b.pose.yaw))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.concise = "edited"  # type: ignore[misc]


def test_model_disagreement_is_reported(faces):
    cmp = faces["pairs"][0]
    flipped = dataclasses.replace(cmp, model_verdicts={"sface": True, "dlib": False})
    e = explain_pair(flipped)
    assert "disagree" in e.concise and e.evidence["strength"] != "strong"
    allowed = _measured(flipped, e.evidence)
    assert not [n for n in _numbers(e.concise + e.detailed) if n not in allowed]
    assert "disagree" not in explain_pair(dataclasses.replace(
        cmp, model_verdicts={"sface": True, "dlib": True})).concise


def test_weak_and_borderline_decisions_are_hedged(faces):
    same_pair, diff_pair = faces["pairs"][0], faces["pairs"][2]
    assert same_pair.same and not diff_pair.same
    # A same-person decision that barely clears a (caller-chosen) threshold is never "strong".
    edge = compare_analyses(same_pair.a, same_pair.b, threshold=same_pair.score - 0.001)
    e = explain_pair(edge)
    assert edge.same and e.evidence["strength"] != "strong"
    assert not re.search(r"very likely|strongly", e.concise), e.concise
    # A decision the calibrated probability contradicts is flagged as uncertain.
    forced = compare_analyses(diff_pair.a, diff_pair.b, threshold=diff_pair.score - 0.001)
    e = explain_pair(forced)
    assert forced.same and forced.confidence < 0.5 and e.evidence["strength"] == "weak"
    assert "uncertain" in e.concise and SAME_PHRASE in e.concise
    assert 35 <= word_count(e.concise) <= 65


def test_fast_pair_makes_no_attribute_claims(faces):
    e = explain_pair(faces["fast_pair"])
    text = e.concise + " " + e.detailed
    assert "not estimated" in e.detailed
    assert not re.search(r"\b(male|female|years?|happy|neutral|sad|angry)\b", text), text


def test_same_seed_same_text_and_seeds_vary(faces):
    cmp = faces["pairs"][1]
    assert explain_pair(cmp, seed=4) == explain_pair(cmp, seed=4)
    concise = {explain_pair(cmp, seed=s).concise for s in range(8)}
    detailed = {explain_pair(cmp, seed=s).detailed for s in range(8)}
    assert len(concise) >= 2 and len(detailed) >= 2


def test_wording_is_stable_across_processes(faces):
    """No per-process salt (Python's str hash) may leak into the wording."""
    cmp = faces["pairs"][2]
    a = FaceAnalysis.from_dict(cmp.a.to_dict(embeddings=True))
    b = FaceAnalysis.from_dict(cmp.b.to_dict(embeddings=True))
    payload = json.dumps([a.to_dict(embeddings=True), b.to_dict(embeddings=True)])
    code = ("import json,sys; from facelm.faces.types import FaceAnalysis as F; "
            "from facelm.verify import compare_analyses as c; "
            "from facelm.explain import explain_pair as e; "
            "d=json.load(sys.stdin); x=e(c(F.from_dict(d[0]),F.from_dict(d[1])),seed=5); "
            "print(json.dumps([x.concise,x.detailed]))")
    outs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                             text=True, env=env, check=True)
        outs.append(json.loads(res.stdout))
    here = explain_pair(compare_analyses(a, b), seed=5)
    assert outs[0] == outs[1] == [here.concise, here.detailed]


# ---- per-aspect descriptions --------------------------------------------------------------------

def test_all_aspects_answered_distinctly(faces):
    assert set(ASPECT_TITLES) == set(ASPECTS) and len(ASPECTS) == 8
    answers = describe_all(faces["portrait"], seed=0)
    assert list(answers) == list(ASPECTS)
    assert all(len(t.split()) >= 10 for t in answers.values()), answers
    assert len(set(answers.values())) == len(ASPECTS)


def test_unknown_aspect_lists_the_valid_names(faces):
    with pytest.raises(ValueError) as err:
        describe_face(faces["portrait"], "hairstyle")
    assert "hairstyle" in str(err.value) and all(a in str(err.value) for a in ASPECTS)


def test_face_numbers_are_rounded_measurements(faces):
    for key in ("portrait", "group", "child", "blurred"):
        a = faces[key]
        allowed = _allowed(a.quality, a.pose, a.attributes, a.geometry, a.image_size,
                           a.faces_found, GEOMETRY_REFERENCE)
        for aspect, text in describe_all(a, seed=2).items():
            stray = [n for n in _numbers(text) if n not in allowed]
            assert not stray, (key, aspect, stray, text)


def test_demographics_states_measured_age_gender_and_race_with_its_confidence(faces, monkeypatch):
    a = faces["portrait"]
    text = describe_face(a, "demographics", seed=1)
    assert f"about {round(a.attributes.age)} years" in text
    assert re.search(rf"\b{a.attributes.gender}\b", text)
    assert pct(a.attributes.gender_confidence) in text
    assert a.attributes.race in text and pct(a.attributes.race_confidence) in text
    # without the race head (the old estimator) nothing is said about race
    old = dataclasses.replace(a, attributes=dataclasses.replace(a.attributes, race=None,
                                                                race_confidence=None, race_probs=None))
    text = describe_face(old, "demographics", seed=1)
    assert "ethnicity" in text.lower() and "not" in text
    assert not re.search(r"\b(white|black|asian|indian|latino|caucasian)\b", text, re.I)


def test_child_age_is_hedged(faces):
    a = faces["child"]
    assert a.attributes.age < 13
    assert "unreliable" in describe_face(a, "demographics")
    assert "unreliable" not in describe_face(faces["portrait"], "demographics")


def test_fast_analysis_makes_no_age_gender_expression_claims(faces):
    a = faces["fast_a"]
    answers = describe_all(a, seed=0)
    for aspect in ("demographics", "expression"):
        assert "not estimated" in answers[aspect]
    for aspect, text in answers.items():
        assert not re.search(r"\b(male|female|years old|about \d+ years)\b", text), (aspect, text)
        assert not any(re.search(rf"\b{e}\b", text) for e in ("happy", "sad", "angry", "surprise"))


def test_blur_and_low_resolution_trigger_hedges(faces):
    blurred, small, clean = faces["blurred"], faces["small"], faces["portrait"]
    assert "blurred" in quality_flags(blurred) and "blurred" not in quality_flags(clean)
    assert "low_resolution" in quality_flags(small) and "low_resolution" not in quality_flags(clean)
    hedge = re.compile(r"caution|less reliable|may be off")
    for a, word in ((blurred, r"blur|out of focus"), (small, r"small|low|little detail")):
        light = describe_face(a, "lighting_quality")
        assert re.search(word, light), light
        assert f"sharpness {a.quality.sharpness:.2f}" in light
        assert hedge.search(describe_face(a, "demographics")), describe_face(a, "demographics")
        assert "lost" in describe_face(a, "skin_texture")
    assert not hedge.search(describe_face(clean, "demographics"))
    assert "lost" not in describe_face(clean, "skin_texture")


def test_other_faces_are_mentioned_in_forensic_answer(faces):
    group, single = faces["group"], faces["portrait"]
    assert group.faces_found > 1 and single.faces_found == 1
    assert f"{group.faces_found} faces" in describe_face(group, "forensic")
    assert "one face" in describe_face(single, "forensic")
    assert "ground truth" in describe_face(single, "forensic")


def test_pose_direction_follows_the_sign_convention(faces):
    a, m = faces["portrait"], faces["mirrored"]
    assert np.sign(a.pose.yaw) == -np.sign(m.pose.yaw) and abs(a.pose.yaw) >= 1
    for face in (a, m):
        side = "right" if face.pose.yaw > 0 else "left"
        text = describe_face(face, "pose")
        assert f"turned {round(abs(face.pose.yaw))}° towards the image's {side}" in text, text


def test_skin_texture_claims_nothing_unmeasured(faces):
    for key in ("portrait", "group", "child"):
        text = describe_face(faces[key], "skin_texture")
        for sentence in re.split(r"(?<=\.)\s", text):
            if re.search(r"wrinkle|spot|blemish|pore", sentence):
                assert re.search(r"\bnot\b|\bno\b|Nothing", sentence), sentence


def test_describe_is_deterministic_and_varies_with_seed(faces):
    a = faces["group"]
    assert describe_all(a, seed=9) == describe_all(a, seed=9)
    for aspect in ("demographics", "pose", "forensic"):
        assert len({describe_face(a, aspect, seed=s) for s in range(8)}) >= 2, aspect


def test_similarity_rounding_to_zero_has_no_sign():
    from facelm.explain.phrasing import sim
    assert (sim(-0.001), sim(0.004), sim(-0.006), sim(0.849)) == ("0.00", "0.00", "-0.01", "0.85")
