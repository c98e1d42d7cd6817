"""Claim extraction and the faithfulness audit, on free text and on real photos' measurements."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from test_metrics_realtext import analysed_faces, analysed_pairs

# (text, is a pair text, expected claims as (kind, value[, subject or "label"])) — free-text
# wordings as GPT-4o-style teachers and fine-tuned VLMs write them, and facelm's own phrasing.
EXTRACTION = [
    ("These two images appear to show the same individual.", True, {("verdict", True)}),
    ("They do not appear to be the same person.", True, {("verdict", False)}),
    ("The two photos depict two different people, despite similar lighting.", True,
     {("verdict", False)}),
    ("It is likely that these are the same person.", True, {("verdict", True)}),
    ("The person appears to be a man in his 40s.", False, {("gender", "male"), ("age", (40.0, 49.0))}),
    ("She looks to be approximately 25-30 years old.", False,
     {("gender", "female"), ("age", (25.0, 30.0))}),
    ("An elderly woman with a warm smile.", False,
     {("age", (65.0, 100.0)), ("gender", "female"), ("expression", "happy")}),
    ("The subject is smiling broadly.", False, {("expression", "happy")}),
    ("Her expression is neutral and calm.", False, {("gender", "female"), ("expression", "neutral")}),
    ("He does not look angry.", False, {("gender", "male")}),
    ("The head is turned slightly to the left.", False, {("yaw", "turned")}),
    ("The face is turned 20° towards the image's right.", False, {("yaw", 20.0)}),
    ("He is looking down and away.", False, {("gender", "male"), ("pitch", "down")}),
    ("The face is facing the camera directly.", False, {("frontal", True)}),
    ("The image is blurry and out of focus.", False, {("sharpness", "blurred")}),
    ("The photo is sharp and well-lit.", False, {("sharpness", "sharp"), ("brightness", "even")}),
    ("The lighting is dim, leaving the face underexposed.", False, {("brightness", "dark")}),
    ("The face is overexposed, with blown out highlights.", False, {("brightness", "bright")}),
    ("He wears dark-rimmed glasses.", False, {("gender", "male"), ("glasses", True)}),
    ("She has dark hair and no glasses.", False, {("gender", "female")}),
    ("Part of the face is covered by a hat.", False, {("occlusion", True)}),
    ("A bright smile lights up her face.", False, {("gender", "female"), ("expression", "happy")}),
    ("The data set labels this person as a woman, of East Asian ethnicity, between 20 and 29 "
     "years old.", False, {("gender", "female", "label"), ("race", "Asian", "label"),
                           ("age", (20.0, 29.0), "label")}),
    ("The data set labels this person as a man, over 70 years old.", False,
     {("gender", "male", "label"), ("age", (70.0, 100.0), "label")}),
    ("The person in the first image is smiling.", True, {("expression", "happy", "a")}),
    ("These are two different individuals: the first image shows a young woman facing the camera,"
     " the second an elderly man in profile.", True,
     {("verdict", False), ("gender", "female", "a"), ("frontal", True, "a"),
      ("gender", "male", "b"), ("age", (65.0, 100.0), "b"), ("yaw", "profile", "b")}),
    ("In photo B the face is blurry, while photo A is sharp.", True,
     {("sharpness", "blurred", "b"), ("sharpness", "sharp", "a")}),
    ("Age: estimated 30 and 33 years, a 3-year gap.", True,
     {("age", (30.0, 30.0), "a"), ("age", (33.0, 33.0), "b"), ("age_gap", 3.0)}),
    ("Head pose: yaw +12° and -20° (gap 32°), pitch gap 16°, roll gap 5°.", True,
     {("yaw", 12.0, "a"), ("yaw", -20.0, "b"), ("yaw_gap", 32.0), ("pitch_gap", 16.0),
      ("roll_gap", 5.0)}),
    ("The head is not near-frontal (yaw 10°, pitch 18°), which foreshortens these ratios.", False,
     {("yaw_abs", 10.0), ("pitch_abs", 18.0)}),
    ("Head pose: the face is turned 10° towards the image's left (the subject's right), looking "
     "18° up, and tilted 5° counter-clockwise.", False,
     {("yaw", -10.0), ("pitch", 18.0), ("roll", -5.0)}),
    ("Skin texture is not measured directly; the face is soft (sharpness 0.61).", False,
     {("sharpness", "soft"), ("sharpness", 0.61)}),
    ("No expression dominates: the model's top class, neutral, has only 37%, with sad at 28%.",
     False, {("expression", "neutral")}),
    ("Fused similarity 0.91 sits 0.12 above the threshold of 0.78.", False, set()),  # one photo
    # identity-score claims (pair texts): facelm's own wordings, then free-text ones
    ("Fused similarity 0.91 sits 0.12 above the threshold of 0.78; SFace (0.54) and dlib (0.93) "
     "both call it a match.", True,
     {("score", 0.91), ("margin", 0.12), ("threshold", 0.78), ("sface_score", 0.54),
      ("dlib_score", 0.93), ("sface_verdict", True), ("dlib_verdict", True)}),
    ("The fused identity similarity is 0.72, 0.06 below the 0.78 threshold, and both identity "
     "models call it a non-match (SFace 0.14, dlib 0.88).", True,
     {("score", 0.72), ("margin", -0.06), ("threshold", 0.78), ("sface_score", 0.14),
      ("dlib_score", 0.88), ("sface_verdict", False), ("dlib_verdict", False)}),
    ("Identity embeddings (intrinsic): fused score 0.85 vs threshold 0.78, SFace 0.54 (cut-off "
     "0.33), dlib 0.93 (cut-off 0.91); the models disagree, which weakens the call.", True,
     {("score", 0.85), ("threshold", 0.78), ("sface_score", 0.54), ("sface_threshold", 0.33),
      ("dlib_score", 0.93), ("dlib_threshold", 0.91), ("models_agree", False)}),
    ("Fused similarity 0.78 sits right at the threshold of 0.78; the identity models disagree: "
     "SFace (-0.02) calls it a non-match, dlib (0.93) a match.", True,
     {("score", 0.78), ("margin", 0.0), ("threshold", 0.78), ("sface_score", -0.02),
      ("dlib_score", 0.93), ("sface_verdict", False), ("dlib_verdict", True),
      ("models_agree", False)}),
    ("These two photos very likely show the same person (over 99% confidence).", True,
     {("verdict", True), ("confidence", (0.99, 1.0))}),
    ("At this threshold the photos count as the same person, but the call is uncertain (the other "
     "outcome's calibrated probability: 52%).", True,
     {("verdict", True), ("confidence", (0.48, 0.48))}),
    ("Verdict: different people, weak evidence (the calibrated probability favours the other "
     "outcome).", True, {("verdict", False), ("confidence", (0.0, 0.5))}),
    ("I am 90% confident these are different people; the dlib similarity is 0.80 and SFace "
     "scores 0.20.", True, {("verdict", False), ("confidence", (0.9, 0.9)), ("dlib_score", 0.8),
                            ("sface_score", 0.2)}),
    ("The cosine similarity is 0.91, exceeding the 0.78 cut-off. SFace's threshold is 0.33. "
     "Neither model calls it a match, and the match probability is 12.5%.", True,
     {("score", 0.91), ("threshold", 0.78), ("sface_threshold", 0.33),
      ("probability", (0.125, 0.125)), ("sface_verdict", False), ("dlib_verdict", False)}),
    ("The similarity score of 0.62 is below the threshold.", True,
     {("score", 0.62), ("margin", (-2.0, 0.0))}),
    ("SFace does not call it a match.", True, set()),
    ("Ethnicity is not estimated by facelm, so none is stated.", False, set()),
]


def _key(c) -> tuple:
    extra = "label" if c.source == "label" else c.subject
    return (c.kind, c.value) if extra is None else (c.kind, c.value, extra)


@pytest.mark.parametrize("text, pair, expected", EXTRACTION)
def test_extract_claims_table(text, pair, expected):
    from facelm.explain.claims import extract_claims
    assert {_key(c) for c in extract_claims(text, pair=pair)} == expected


def _face(pred) -> tuple:
    """A real analysed photo that meets the conditions the check table relies on."""
    faces = [(r, a) for r, a in analysed_faces()] + [({}, c.a) for _, c in analysed_pairs()]
    for row, a in faces:
        if a.attributes is not None and pred(a):
            return row, a
    pytest.fail("no analysed test photo meets the conditions")


def test_checks_catch_hallucinations_on_a_real_photo():
    from facelm.eval.faithfulness import AuditItem, audit_item
    from facelm.faces.types import EXPRESSIONS
    row, a = _face(lambda a: a.attributes.gender_confidence >= 0.9 and a.attributes.age < 45
                   and abs(a.pose.yaw) < 5 and 0.35 <= a.quality.brightness <= 0.65
                   and a.quality.sharpness >= 1.0
                   and min(a.attributes.expression_probs.values()) < 0.1)
    at, q = a.attributes, a.quality
    other = "female" if at.gender == "male" else "male"
    noun = {"male": "man", "female": "woman"}
    top = max(at.expression_probs, key=at.expression_probs.get)
    rare = min(at.expression_probs, key=at.expression_probs.get)
    assert rare in EXPRESSIONS and rare != top
    table = [  # (sentence, expected status of its one claim)
        (f"The person appears to be a {noun[at.gender]}.", "supported"),
        (f"The person appears to be a {noun[other]}.", "contradicted"),
        (f"This person is about {round(at.age)} years old.", "supported"),
        (f"This person is about {round(at.age) + 35} years old.", "contradicted"),
        ("An elderly person.", "contradicted"),
        (f"The expression reads as {top}.", "supported"),
        (f"The face looks {ADJ[rare]}.", "contradicted"),
        ("The face is facing the camera directly.", "supported"),
        ("The face is seen in profile.", "contradicted"),
        ("The head is turned to the left.", "contradicted"),
        (f"Head pose: yaw {a.pose.yaw + 40:+.0f}°.", "contradicted"),
        (f"The face has mean brightness {round(q.brightness * 100)}%.", "supported"),
        (f"The face has mean brightness {round(q.brightness * 100) + 30}%.", "contradicted"),
        ("The image is blurry and out of focus.", "contradicted"),
        ("The photo is sharp.", "supported"),
        ("The face is evenly lit.", "supported"),
        ("The person wears glasses.", "uncheckable"),
    ]
    for sentence, want in table:
        checks = audit_item(AuditItem("x", "m", sentence, (a.source,)), [a])
        assert checks, sentence
        got = {c.status for c in checks}
        assert got == {want}, (sentence, [(c.claim.kind, c.status, c.reason) for c in checks])


ADJ = {"angry": "angry", "disgust": "disgusted", "fear": "afraid", "happy": "happy", "sad": "sad",
       "surprise": "surprised", "neutral": "neutral"}


def test_labels_are_checked_separately():
    from facelm.eval.faithfulness import AuditItem, audit_item
    row, a = _face(lambda a: True)
    labels = {"age": row.get("age", "30"), "gender": row.get("gender", "male")}
    wrong = "female" if labels["gender"] == "male" else "male"
    noun = {"male": "man", "female": "woman"}[wrong]
    item = AuditItem("x", "m", f"The data set labels this person as a {noun}.", (a.source,), labels)
    (check,) = audit_item(item, [a])
    assert (check.status, check.label_status) == ("contradicted", "contradicted")
    age = int(float(labels["age"]))
    item = AuditItem("y", "m", f"She is about {age + 20} years old.", (a.source,), labels)
    statuses = {c.claim.kind: c.label_status for c in audit_item(item, None)}
    assert statuses["age"] == "contradicted"


def test_verdict_claims_on_real_pairs():
    from facelm.eval.faithfulness import AuditItem, audit_item, summarise
    items, checks = [], []
    for row, cmp in analysed_pairs():
        label = row["same"] == "1"
        for said in (True, False):
            text = ("These two photos show the same person." if said
                    else "These photos show two different people.")
            it = AuditItem(row["file_a"], "m", text, (cmp.a.source, cmp.b.source), {}, label)
            (c,) = audit_item(it, [cmp.a, cmp.b])
            assert c.status == ("supported" if said == cmp.same else "contradicted")
            assert c.label_status == ("supported" if said == label else "contradicted")
            items.append(it)
            checks.append([c])
    s = summarise(items, checks)["m"]
    assert s["verdict_agreement_pct"] == pytest.approx(50.0)
    assert s["contradicted_pct"] == pytest.approx(50.0)


def _evidence_items():
    from facelm.eval.faithfulness import AuditItem
    from facelm.explain import describe_all, explain_pair
    from facelm.verify import compare_analyses
    out = []
    for n, (row, cmp) in enumerate(analysed_pairs()):
        for seed in range(2):
            e = explain_pair(compare_analyses(cmp.a, cmp.b), seed=seed)
            for tier in ("concise", "detailed"):
                out.append((AuditItem(f"p{n}-{tier}-{seed}", "evidence", getattr(e, tier),
                                      (cmp.a.source, cmp.b.source), {}, row["same"] == "1"),
                            [cmp.a, cmp.b]))
    faces = [(r, a) for r, a in analysed_faces()] + [({}, c.b) for _, c in analysed_pairs()]
    for n, (row, a) in enumerate(faces):
        for seed in range(2):
            for aspect, text in describe_all(a, seed=seed).items():
                out.append((AuditItem(f"f{n}-{aspect}-{seed}", "evidence", text, (a.source,),
                                      dict(row)), [a]))
    return out


def test_evidence_explainer_is_faithful():
    """facelm's own explanations state only measured values: all claims supported."""
    from facelm.eval.faithfulness import audit_item, summarise
    pairs = _evidence_items()
    checks = [audit_item(it, faces) for it, faces in pairs]
    s = summarise([it for it, _ in pairs], checks)["evidence"]
    bad = [(c.claim.text, c.reason) for cs in checks for c in cs if c.status != "supported"]
    assert s["contradicted"] == 0 and s["supported_pct"] >= 99.0, bad[:10]
    assert s["claims_per_text"] >= 2.5 and len(s["kinds"]) >= 12
    # the measured verdict can still disagree with the label on hard pairs: it is reported
    assert s["verdict_agreement_pct"] is not None


def _records(tmp_path: Path) -> tuple[Path, list]:
    from facelm.data.schema import QA_QUESTIONS, Record
    from facelm.explain import describe_face
    faces = analysed_faces()[:3]
    recs = [Record(id=f"{r['file']}#{asp}", kind="qa", images=(a.source,),
                   question=QA_QUESTIONS[asp], answer=describe_face(a, asp), aspect=asp,
                   labels=dict(r), teacher="evidence")
            for r, a in faces for asp in ("demographics", "pose", "lighting_quality")]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in recs))
    return path, faces


def test_cli_audits_records_and_predictions(tmp_path, monkeypatch):
    from facelm.cli import main
    records, faces = _records(tmp_path)
    lies = {}
    for r, a in faces:
        old = "woman" if a.attributes.gender == "male" else "man"
        lies[f"{r['file']}#demographics"] = f"An elderly {old} in profile, blurry and dark."
    pred = tmp_path / "model.jsonl"
    pred.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in lies.items()))
    out = tmp_path / "audit"
    assert main(["eval", "faithfulness", "--records", str(records), "--pred", f"liar={pred}",
                 "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "faithfulness.json").read_text())
    assert summary["evidence"]["contradicted"] == 0 and summary["evidence"]["supported"] > 10
    assert summary["liar"]["contradicted_pct"] >= 50
    assert {"report.md", "faithfulness.png", "claims.jsonl", "config.json",
            "analyses.jsonl"} <= {p.name for p in out.iterdir()}
    report = (out / "report.md").read_text()
    assert "liar" in report and "liar: claims by group" in report and "% distinct texts" in report
    assert summary["evidence"]["groups"]["lighting_quality"]["supported_pct"] == 100.0
    assert summary["evidence"]["distinct_texts"] == 9   # 3 photos x 3 aspects, all different
    # a rerun reuses the cached analyses instead of analysing the photos again
    import facelm.api
    monkeypatch.setattr(facelm.api, "analyze", lambda *a, **k: pytest.fail("re-analysed"))
    assert main(["eval", "faithfulness", "--records", str(records), "--out", str(out),
                 "--no-progress"]) == 0


def test_cli_rejects_unknown_prediction_ids(tmp_path, capsys):
    from facelm.cli import main
    records, _ = _records(tmp_path)
    pred = tmp_path / "p.jsonl"
    pred.write_text('{"id": "nope", "text": "a man"}\n')
    code = main(["eval", "faithfulness", "--records", str(records), "--pred", str(pred),
                 "--out", str(tmp_path / "o"), "--no-analysis"])
    err = capsys.readouterr().err
    assert code == 2 and "p.jsonl" in err and "not in the records" in err


def test_negated_same_person_verdicts_read_as_different():
    """'not the same person' (and n't glued to a verb) must never be read as a same verdict."""
    from facelm.explain.claims import _verdict
    for text in ("They are not the same person.", "This is not the same person.",
                 "The photos doesn't show the same individual.", "They aren't the same individual."):
        assert [c.value for c in _verdict(text)] == [False], text
    assert [c.value for c in _verdict("These photos show the same person.")] == [True]


@pytest.mark.parametrize("label, expect", [("Woman", "female"), ("F", "female"), ("male", "male"),
                                           ("M", "male"), ("0", None), ("1", None), ("", None)])
def test_gender_labels_read_alike_by_audit_fairness_and_teacher(label, expect):
    """One reading of a label everywhere; numeric codes are not guessed (UTKFace's 0 is male,
    other sets' 1 is)."""
    from facelm.eval.fairness import norm_gender
    from facelm.eval.faithfulness import check_label
    from facelm.explain.claims import Claim
    from facelm.teacher.labels import canonical_gender
    assert norm_gender(label) == canonical_gender(label) == expect
    verdict = check_label(Claim("gender", "female", "a woman"), {"gender": label}, None, 1)
    assert verdict == (None if expect is None else "supported" if expect == "female" else "contradicted")


# ---- identity-score claims ----------------------------------------------------------------

def test_ages_degrees_and_other_numbers_are_not_scores():
    """Numbers are read as scores only where identity words anchor them."""
    from facelm.explain.claims import extract_claims
    from facelm.explain.score_claims import SCORE_KINDS
    text = ("Age: estimated 30 and 33 years, a 3-year gap. Head pose: yaw +12° and -20° (gap 32°), "
            "pitch gap 16°. Brightness 54% vs 41%, sharpness 0.61 vs 2.57; landmark ratios differ "
            "by 0.08 on average. Gender: both male (confidence 97% vs 95%). The gender classifier "
            "says male (97% confidence). One photo is 3.5× sharper, with a quality score of 0.72 "
            "and a similarity in age of 0.5 years; the threshold age is 45.")
    claims = extract_claims(text, pair=True)
    assert not [(c.kind, c.text) for c in claims if c.kind in SCORE_KINDS]
    # ...while the same numbers are still read as what they are
    assert {"age", "age_gap", "yaw", "yaw_gap", "pitch_gap", "brightness", "sharpness",
            "gender"} <= {c.kind for c in claims}


@pytest.mark.parametrize("stated, true, unit, ok", [
    (0.85, 0.8512, 0.01, True), (0.84, 0.8512, 0.01, True), (0.86, 0.8512, 0.01, True),
    (0.83, 0.8512, 0.01, False), (0.87, 0.8512, 0.01, False), (0.9, 0.8512, 0.1, True),
    (0.7, 0.8512, 0.1, False), (-0.12, 0.1234, 0.01, False), ((0.99, 1.0), 0.9951, 0.01, True),
    ((0.99, 1.0), 0.9649, 0.01, False), ((0.0, 0.01), 0.0049, 0.01, True)])
def test_rounding_rule(stated, true, unit, ok):
    from facelm.eval.faithfulness_scores import stated_matches
    assert stated_matches(stated, true, unit) is ok


def test_every_claim_kind_has_one_group():
    from facelm.eval.faithfulness import CLAIM_GROUPS, FACE_CHECKS, GROUPS, PAIR_KINDS, claim_group
    assert set(CLAIM_GROUPS) == set(FACE_CHECKS) | set(PAIR_KINDS)
    assert {"verdict", "score", "age", "age_gap", "gender", "expression", "pose",
            "lighting_quality"} <= set(GROUPS)
    assert claim_group("dlib_verdict") == claim_group("margin") == "score"
    with pytest.raises(ValueError, match="CLAIM_GROUPS"):
        claim_group("eye_colour")


def _pair_texts():
    """(AuditItem, faces, Comparison, seed, tier) for facelm's own texts about real LFW pairs."""
    from facelm.eval.faithfulness import AuditItem
    from facelm.explain import explain_pair
    from facelm.verify import compare_analyses
    out = []
    for n, (row, pair) in enumerate(analysed_pairs()):
        cmp = compare_analyses(pair.a, pair.b)
        for seed in range(2):
            e = explain_pair(cmp, seed=seed)
            for tier in ("concise", "detailed"):
                out.append((AuditItem(f"p{n}-{tier}-{seed}", "evidence", getattr(e, tier),
                                      (pair.a.source, pair.b.source), {}, row["same"] == "1"),
                            [pair.a, pair.b], cmp, seed, tier))
    return out


def test_template_score_claims_are_all_supported():
    from facelm.eval.faithfulness import audit_item, claim_group, summarise
    texts = _pair_texts()
    checks = [audit_item(it, faces) for it, faces, *_ in texts]
    for (it, *_), cs in zip(texts, checks):
        score = [c for c in cs if claim_group(c.claim.kind) == "score"]
        # concise: confidence, score, margin, threshold, 2 model scores, 2 model calls;
        # detailed: confidence, score, threshold, 2 model scores and thresholds, 2 model calls
        assert len(score) >= 8, (it.text, [c.claim.kind for c in score])
        bad = [(c.claim.kind, c.claim.text, c.reason) for c in score if c.status != "supported"]
        assert not bad, (it.text, bad)
    s = summarise([it for it, *_ in texts], checks)["evidence"]
    assert s["groups"]["score"]["supported_pct"] == 100.0 and s["groups"]["score"]["claims"] >= 320
    assert {"score", "sface_score", "dlib_score", "threshold", "sface_threshold", "dlib_threshold",
            "margin", "confidence", "sface_verdict", "dlib_verdict"} <= set(s["kinds"])
    assert s["kinds"]["margin"]["supported_pct"] == 100.0
    assert 0 < s["distinct_texts_pct"] <= 100.0


def _sub(text: str, m, group: int, new: str) -> str:
    return text[:m.start(group)] + new + text[m.end(group):]


def _plant_score(text: str, cmp, *_):
    m = re.search(r"(?i)fused (?:identity )?(?:similarity|score)(?: is)? (-?\d\.\d\d)", text)
    v = float(m[1])
    return _sub(text, m, 1, f"{v - 0.1 if v >= 0.1 else v + 0.1:.2f}"), ["score"]


def _plant_swap(text: str, cmp, *_):
    m = re.search(r"SFace \(?(-?\d\.\d\d)\)?.*?dlib \(?(-?\d\.\d\d)", text)
    if abs(float(m[1]) - float(m[2])) < 0.015:
        return None   # within the one-unit rounding slack of each other: a swap is no error
    swapped = text[:m.start(1)] + m[2] + text[m.end(1):m.start(2)] + m[1] + text[m.end(2):]
    return swapped, ["dlib_score", "sface_score"]


def _plant_margin(text: str, cmp, *_):
    m = re.search(r"\d\.\d\d (above|below) the", text)
    if m is None:
        return None   # the detailed tier states no margin
    return _sub(text, m, 1, {"above": "below", "below": "above"}[m[1]]), ["margin"]


def _plant_confidence(text: str, cmp, *_):
    m = re.search(r"\((?:over |under )?(\d+)% confidence\)", text)
    n = int(m[1])
    wrong = f"({n - 20 if n >= 50 else n + 20}% confidence)"
    return text[:m.start()] + wrong + text[m.end():], ["confidence"]


def _plant_both_word(text: str, cmp, *_):
    m = re.search(r"both (?:identity models )?call it a (match|non-match)", text)
    flip = {"match": "non-match", "non-match": "match"}[m[1]]
    return _sub(text, m, 1, flip), ["dlib_verdict", "sface_verdict"]


def _plant_one_model(text: str, cmp, seed: int, tier: str):
    """dlib's call flipped in the evidence: the concise text then says the models disagree and
    gives dlib's wrong word ("SFace (0.82) calls it a match, dlib (0.98) a non-match")."""
    from facelm.explain import explain_pair
    if tier != "concise" or not cmp.models_agree:
        return None   # the detailed tier names no per-model call when the models differ
    wrong = dataclasses.replace(cmp, model_verdicts={**cmp.model_verdicts,
                                                     "dlib": not cmp.model_verdicts["dlib"]})
    planted = explain_pair(wrong, seed=seed).concise
    assert "the identity models disagree" in planted
    return planted, ["dlib_verdict", "models_agree"]


PLANTS = {"score": _plant_score, "swap_models": _plant_swap, "margin_sign": _plant_margin,
          "confidence": _plant_confidence, "both_models_word": _plant_both_word,
          "one_model_word": _plant_one_model}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_planted_score_errors_are_caught(plant):
    """One wrong number or word in facelm's own text: that claim is extracted and contradicted,
    every other claim stays supported."""
    from facelm.eval.faithfulness import audit_item
    planted_texts = 0
    for it, faces, cmp, seed, tier in _pair_texts():
        done = PLANTS[plant](it.text, cmp, seed, tier)
        if done is None:
            continue
        text, want = done
        assert text != it.text
        before = audit_item(it, faces)
        assert all(c.status == "supported" for c in before)
        after = audit_item(dataclasses.replace(it, text=text), faces)
        wrong = sorted(c.claim.kind for c in after if c.status == "contradicted")
        assert wrong == sorted(want), (plant, text, [(c.claim.kind, c.claim.text, c.reason)
                                                     for c in after if c.status != "supported"])
        assert all(c.status in ("supported", "contradicted") for c in after)
        planted_texts += 1
    assert planted_texts >= 10, plant


def test_comparison_is_computed_once_per_item(monkeypatch):
    import facelm.eval.faithfulness_scores as fs
    from facelm.eval.faithfulness import audit_item
    calls = []
    real = fs.compare_analyses
    monkeypatch.setattr(fs, "compare_analyses", lambda a, b: calls.append(1) or real(a, b))
    it, faces, *_ = next(t for t in _pair_texts() if t[-1] == "detailed")
    checks = audit_item(it, faces)
    assert len([c for c in checks if c.claim.kind in fs.SCORE_KINDS]) >= 9 and calls == [1]
    # a pair without identity embeddings: the identity claims are uncheckable, not errors
    bare = [dataclasses.replace(f, embeddings={}) for f in faces]
    assert {c.status for c in audit_item(it, bare) if c.claim.kind in fs.SCORE_KINDS} == \
        {"uncheckable"}


def test_summary_reports_groups_and_distinct_texts():
    from facelm.eval.faithfulness import AuditItem, audit_item, summarise
    it, faces, cmp, *_ = _pair_texts()[0]
    wrong = _plant_score(it.text, cmp)[0]
    items = [it, it, dataclasses.replace(it, text=wrong), dataclasses.replace(it, model="other")]
    s = summarise(items, [audit_item(i, faces) for i in items])
    assert s["evidence"]["texts"] == 3 and s["evidence"]["distinct_texts"] == 2
    assert s["evidence"]["distinct_texts_pct"] == pytest.approx(200 / 3)
    g = s["evidence"]["groups"]["score"]
    assert g["contradicted"] == 1 and g["claims"] == g["supported"] + 1
    assert g["contradicted_pct"] == pytest.approx(100 / g["claims"])
    assert s["evidence"]["kinds"]["score"]["contradicted_pct"] == pytest.approx(100 / 3)
    assert s["other"]["groups"]["score"]["contradicted"] == 0
