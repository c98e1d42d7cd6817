"""Race claims in the faithfulness audit: extraction from facelm's own and free-text wordings,
checks against the race head on real photos, and race used as identity evidence (always caught)."""
from __future__ import annotations

import random

import pytest

from test_metrics_realtext import analysed_faces, analysed_pairs

# (text, pair text?, expected claims as (kind, value[, subject or "label"][, "hedged"]))
EXTRACTION = [
    # facelm's own sentences (aspects._race_sentence); the unsure ones state no group
    ("The race estimate (UTKFace's five groups, for audits) reads Asian at 87%; it describes "
     "appearance, not identity.", False,
     {("race", "Asian"), ("race_confidence", ("Asian", .87, .87))}),
    ("Estimated race group: White (over 99%), an audit aid that says nothing about identity.",
     False, {("race", "White"), ("race_confidence", ("White", .99, 1.0))}),
    ("The race estimate (UTKFace's five groups) is unsure: its top group, Indian, gets only 45%, "
     "so none is stated as a reading.", False, set()),
    ("No race group is clear: the estimate's best, Others, reaches just 41%.", False, set()),
    ("No ethnicity estimate is made; facelm does not measure it.", False, set()),
    # free text (GPT-4o style)
    ("The person appears to be of East Asian descent.", False, {("race", "Asian")}),
    ("Ethnicity: white.", False, {("race", "White")}),
    ("The person appears to be white.", False, {("race", "White")}),
    ("He appears to be Caucasian.", False, {("gender", "male"), ("race", "White")}),
    ("The subject is African American.", False, {("race", "Black")}),
    ("She is a Black woman with white hair in a black-and-white photo.", False,
     {("gender", "female"), ("race", "Black")}),
    ("The subject may be of South Asian descent.", False, {("race", "Indian", "hedged")}),
    ("The person appears to be of Indian ethnicity, with 55% confidence.", False,
     {("race", "Indian", "hedged"), ("race_confidence", ("Indian", .55, .55))}),
    ("She looks Hispanic or Latina.", False, {("gender", "female"), ("race", "Others")}),
    ("He is probably Middle Eastern.", False, {("gender", "male"), ("race", "Others")}),
    ("Race reads Southeast Asian at 62%.", False,
     {("race", "Asian"), ("race_confidence", ("Asian", .62, .62))}),
    # the teacher's label sentences (teacher/labels.py), FairFace's groups included
    ("The data set labels this person as a man, of an ethnicity outside the White, Black, Asian "
     "and Indian groups.", False, {("gender", "male", "label"), ("race", "Others", "label")}),
    ("The data set labels this person as of Latino or Hispanic ethnicity.", False,
     {("race", "Others", "label")}),
    # negations, no group, everyday colour words, lists of the groups
    ("The person is not Asian.", False, set()),
    ("Ethnicity is uncertain.", False, set()),
    ("I cannot determine race or ethnicity from an image.", False, set()),
    ("He has black hair and a white shirt.", False, {("gender", "male")}),
    ("The man stands with other people in front of a white wall.", False, {("gender", "male")}),
    ("UTKFace's five groups are White, Black, Asian, Indian and Others.", False, set()),
    # pair texts: per photo, and race used as identity evidence
    ("Photo A shows a white man, photo B an Asian woman.", True,
     {("gender", "male", "a"), ("race", "White", "a"), ("gender", "female", "b"),
      ("race", "Asian", "b")}),
    ("Photo A reads Asian (87% confidence).", True,   # the race head's 87%, not the verdict's
     {("race", "Asian", "a"), ("race_confidence", ("Asian", .87, .87), "a")}),
    ("Both individuals share the same ethnicity, supporting a match.", True,
     {("race_identity", True)}),
    ("They are of different races, so they are different people.", True,
     {("race_identity", False), ("verdict", False)}),
    ("Both appear to be of East Asian descent, which suggests the same person.", True,
     {("race", "Asian", "a"), ("race", "Asian", "b"), ("race_identity", True)}),
    ("Different ethnicities (White vs Asian) rule out a match.", True,
     {("race", "White", "a"), ("race", "Asian", "b"), ("race_identity", False)}),
    ("Similarities: same gender, same ethnicity, similar age.", True, {("race_identity", True)}),
    ("Different races mean they cannot be the same person.", True, {("race_identity", False)}),
    # the rule followed, not broken
    ("Shared ethnicity is not evidence of identity.", True, set()),
    ("The same ethnicity doesn't prove it's the same person.", True, set()),
    ("Regardless of ethnicity, the fused similarity 0.91 is above the threshold.", True,
     {("score", 0.91), ("margin", (0.0, 2.0))}),
    ("Both individuals share the same ethnicity, supporting a match.", False, set()),  # one face
]


def _key(c) -> tuple:
    extra = "label" if c.source == "label" else c.subject
    key = (c.kind, c.value) if extra is None else (c.kind, c.value, extra)
    return key + ("hedged",) if c.hedged else key


@pytest.mark.parametrize("text, pair, expected", EXTRACTION)
def test_race_claims_are_extracted(text, pair, expected):
    from facelm.explain.claims import extract_claims
    assert {_key(c) for c in extract_claims(text, pair=pair)} == expected


def _faces() -> list:
    return [(r, a) for r, a in analysed_faces()] + [({}, c.a) for _, c in analysed_pairs()] + \
        [({}, c.b) for _, c in analysed_pairs()]


def _face(pred) -> tuple:
    for row, a in _faces():
        if a.attributes is not None and a.attributes.race is not None and pred(a.attributes):
            return row, a
    pytest.fail("no analysed test photo meets the conditions")


# Free-text words for each group, none of them the group's own name.
WORDS = {"White": "Caucasian", "Black": "African American", "Asian": "East Asian",
         "Indian": "South Asian", "Others": "Hispanic"}


def _statuses(text: str, a, labels: dict | None = None, kinds=("race", "race_confidence")):
    from facelm.eval.faithfulness import AuditItem, audit_item
    checks = audit_item(AuditItem("x", "m", text, (a.source,), labels or {}), [a])
    return [(c.claim.kind, c.status, c.label_status) for c in checks if c.claim.kind in kinds]


def test_race_claims_against_a_sure_race_head():
    from facelm.explain.evidence import LOW_RACE_CONFIDENCE
    _, a = _face(lambda at: at.race_confidence >= 0.8 and min(at.race_probs.values()) < 0.05)
    at = a.attributes
    rare = min(at.race_probs, key=at.race_probs.get)
    other = next(g for g in WORDS if g != at.race)
    pct = round(at.race_confidence * 100)
    assert at.race_confidence >= LOW_RACE_CONFIDENCE
    table = [  # (sentence, expected statuses of its race claims)
        (f"The person appears to be of {WORDS[at.race]} descent.", ["supported"]),
        (f"The person appears to be of {WORDS[other]} descent.", ["contradicted"]),
        (f"The person is possibly {WORDS[rare]}.", ["contradicted"]),   # hedged, still wrong
        (f"Race reads {at.race} at {min(pct, 99)}%.", ["supported", "supported"]),
        (f"Race reads {at.race} at {max(pct - 30, 1)}%.", ["supported", "contradicted"]),
    ]
    for sentence, want in table:
        assert [s for _, s, _ in _statuses(sentence, a)] == want, (sentence, at.race_probs)


def test_an_unsure_race_head_backs_only_a_hedged_top_group():
    from facelm.explain.evidence import LOW_RACE_CONFIDENCE
    _, a = _face(lambda at: at.race_confidence < LOW_RACE_CONFIDENCE)
    at = a.attributes
    rare = min(at.race_probs, key=at.race_probs.get)
    assert [s for _, s, _ in _statuses(f"The person is {WORDS[at.race]}.", a)] == ["contradicted"]
    assert [s for _, s, _ in _statuses(f"The person may be {WORDS[at.race]}.", a)] == ["supported"]
    pct = round(at.race_confidence * 100)
    assert [s for _, s, _ in _statuses(f"Ethnicity: possibly {at.race}, only {pct}%.", a)] == \
        ["supported", "supported"]
    if at.race_probs[rare] < 0.10:
        assert [s for _, s, _ in _statuses(f"Perhaps {WORDS[rare]}.", a)] == ["contradicted"]


def test_facelms_own_race_sentences_are_supported():
    from facelm.eval.faithfulness import AuditItem, audit_item
    from facelm.explain.aspects import _race_sentence
    from facelm.explain.evidence import LOW_RACE_CONFIDENCE
    stated = 0
    for _, a in _faces():
        for seed in range(4):   # both wordings of each case
            text = _race_sentence(a, random.Random(seed))
            checks = audit_item(AuditItem("x", "evidence", text, (a.source,)), [a])
            race = [c for c in checks if c.claim.kind.startswith("race")]
            if a.attributes.race_confidence < LOW_RACE_CONFIDENCE:
                assert race == [], text          # the unsure wording states no group
            else:
                assert {c.claim.kind for c in race} == {"race", "race_confidence"}, text
                assert all(c.status == "supported" for c in race), \
                    (text, [(c.claim.kind, c.reason) for c in race])
                stated += 1
    assert stated >= 20


def test_label_sourced_race_claims_are_checked_against_the_label():
    _, a = _face(lambda at: True)
    labels = {"race": "East Asian"}   # FairFace's spelling, the head's "Asian"
    text = "The data set labels this person as of {} ethnicity."
    assert _statuses(text.format("East Asian"), a, labels) == [("race", "supported", "supported")]
    assert _statuses(text.format("White"), a, labels) == \
        [("race", "contradicted", "contradicted")]
    # a text-sourced claim gets a label status too, beside its check against the head
    (check,) = _statuses(f"The person appears to be of {WORDS[a.attributes.race]} descent.", a,
                         {"race": "Black" if a.attributes.race != "Black" else "White"})
    assert check[2] == "contradicted"


def test_race_as_identity_evidence_is_always_caught():
    from facelm.eval.faithfulness import AuditItem, audit_item, claim_group, summarise
    items, checks = [], []
    for row, cmp in analysed_pairs()[:4]:
        for text in ("Both share the same ethnicity, supporting a match.",
                     "They are of different races, so they are different people."):
            it = AuditItem(row["file_a"], "m", text, (cmp.a.source, cmp.b.source), {},
                           row["same"] == "1")
            for faces in ([cmp.a, cmp.b], None):   # measured, and labels only
                cs = [c for c in audit_item(it, faces) if c.claim.kind == "race_identity"]
                assert [c.status for c in cs] == ["contradicted"], text
                assert "never identity evidence" in cs[0].reason
            items.append(it)
            checks.append(audit_item(it, [cmp.a, cmp.b]))
    assert claim_group("race_identity") == claim_group("race") == "race"
    s = summarise(items, checks)["m"]
    assert s["groups"]["race"]["contradicted"] == len(items)


def test_nothing_about_race_without_a_race_estimate(portrait_path, monkeypatch):
    from facelm.eval.faithfulness import AuditItem, audit_item
    from facelm.explain import describe_face
    from facelm.faces.analysis import analyze
    monkeypatch.setenv("FACELM_ATTRIBUTES", "dlib-v1")   # the estimator without the race head
    a = analyze(portrait_path)
    assert a.attributes is not None and a.attributes.race is None
    for seed in range(3):
        text = describe_face(a, "demographics", seed=seed)
        checks = audit_item(AuditItem("x", "evidence", text, (a.source,)), [a])
        assert not [c for c in checks if c.claim.kind.startswith("race")], text
    checks = _statuses("The person appears to be of East Asian descent, Asian at 90%.", a)
    assert [s for _, s, _ in checks] == ["uncheckable", "uncheckable"]
    assert all(c.reason.startswith("race is not estimated") for c in audit_item(
        AuditItem("y", "m", "Ethnicity: white.", (a.source,)), [a]))
