"""Our metrics equal pycocoevalcap's on a few hundred real texts about real faces.

The texts come from the evidence explainer run on real LFW pairs and UTKFace photos: the same
measurements explained with different seeds give different wordings (paraphrase-like references),
and descriptions of other faces give unrelated ones. The analyses are made once per test session
and shared with the faithfulness tests (they import `analysed_pairs`/`analysed_faces` from here).
"""
from __future__ import annotations

import csv
import functools

import numpy as np
import pytest

from conftest import DATA   # $FACELM_DATA, else ../shared/data
N_PAIRS, N_FACES = 10, 10


@functools.lru_cache(maxsize=1)
def analysed_pairs() -> list:
    """Comparisons (with analyses) of the first LFW View 1 test pairs, same and different."""
    from facelm.api import compare
    with open(DATA / "lfw-view1" / "pairs.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["set"] == "view1_test"]
    rows = [r for r in rows if r["same"] == "1"][:N_PAIRS // 2] + \
           [r for r in rows if r["same"] == "0"][:N_PAIRS // 2]
    root = DATA / "lfw-view1"
    return [(r, compare(root / r["file_a"], root / r["file_b"])) for r in rows]


@functools.lru_cache(maxsize=1)
def analysed_faces() -> list:
    """(labels row, FaceAnalysis) for UTKFace photos of several ages, both genders."""
    from facelm.api import analyze
    with open(DATA / "utkface-dev" / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["age"]) >= 16][:N_FACES]
    return [(r, analyze(DATA / "utkface-dev" / r["file"])) for r in rows]


@functools.lru_cache(maxsize=1)
def real_corpus() -> tuple[dict[str, str], dict[str, list[str]]]:
    """~350 (prediction, references) items of real explainer text."""
    from facelm.explain import describe_all, explain_pair
    from facelm.verify import compare_analyses
    preds: dict[str, str] = {}
    refs: dict[str, list[str]] = {}
    for n, (_, cmp) in enumerate(analysed_pairs()):
        c = compare_analyses(cmp.a, cmp.b)
        texts = [explain_pair(c, seed=s) for s in range(4)]
        for tier in ("concise", "detailed"):
            preds[f"pair{n}-{tier}"] = getattr(texts[0], tier)
            refs[f"pair{n}-{tier}"] = [getattr(t, tier) for t in texts[1:]]
    faces = [a for _, a in analysed_faces()] + [c.a for _, c in analysed_pairs()]
    described = [[describe_all(a, seed=s) for s in range(3)] for a in faces]
    for n, seeds in enumerate(described):
        other = described[(n + 1) % len(described)]   # a different face: unrelated references
        for aspect, text in seeds[0].items():
            preds[f"face{n}-{aspect}"] = text
            refs[f"face{n}-{aspect}"] = [seeds[1][aspect], seeds[2][aspect]]
            preds[f"face{n}-{aspect}-x"] = text
            refs[f"face{n}-{aspect}-x"] = [other[1][aspect]]
    return preds, refs


@functools.lru_cache(maxsize=1)
def ours_on_corpus():
    """facelm's metrics (no BERTScore) on the real corpus, computed once per session."""
    from facelm.eval.metrics import MetricsConfig, evaluate_texts
    preds, refs = real_corpus()
    # two METEOR processes: the split-and-merge path must equal pycocoevalcap's single process
    return evaluate_texts(preds, refs, MetricsConfig(bertscore=False, meteor_workers=2))


def reference_scores(preds: dict[str, str], refs: dict[str, list[str]],
                     meteor: bool = True) -> dict[str, float]:
    """pycocoevalcap's own pipeline, as COCOEvalCap runs it."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in rs] for i, rs in refs.items()})
    res = tok.tokenize({i: [{"caption": preds[i]}] for i in refs})
    out = dict(zip(("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"), Bleu(4).compute_score(gts, res,
                                                                                 verbose=0)[0]))
    if meteor:
        out["METEOR"] = Meteor().compute_score(gts, res)[0]
    out["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    out["CIDEr"] = Cider().compute_score(gts, res)[0]
    return out


def test_corpus_is_real_and_varied():
    preds, refs = real_corpus()
    assert len(preds) >= 300
    # different seeds must really change the wording, or the references would be copies
    differing = sum(preds[i] not in refs[i] for i in refs)
    assert differing > 0.5 * len(refs)


def test_equal_to_pycocoevalcap_on_real_text():
    preds, refs = real_corpus()
    ours = ours_on_corpus()
    assert ours.tokenizer == "ptb-java"
    ref = reference_scores(preds, refs)
    assert list(ours.scores) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L",
                                 "CIDEr"]
    for key, value in ref.items():
        assert ours.scores[key] == pytest.approx(value, abs=1e-9, rel=1e-9), key
    # sanity: the scores are informative, not degenerate
    assert 0.2 < ours.scores["BLEU-4"] < 0.95 and ours.scores["CIDEr"] > 0.5


def test_equal_per_item_and_on_subsets():
    """Per-item ROUGE-L/CIDEr and corpus scores on subsets (CIDEr's idf depends on the corpus)."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from facelm.eval.metrics import regroup
    from facelm.eval.metrics_ngrams import ngram_metrics
    from facelm.eval.tokenize import ptb_tokenize
    preds, refs = real_corpus()
    ids = sorted(refs)[::3]
    flat = ptb_tokenize([preds[i] for i in ids] + [r for i in ids for r in refs[i]])
    hyps, item_refs = regroup(flat, [refs[i] for i in ids])
    scores, items = ngram_metrics(hyps, item_refs)
    gts = {i: r for i, r in zip(ids, item_refs)}
    res = {i: [h] for i, h in zip(ids, hyps)}
    c, c_items = Cider().compute_score(gts, res)
    r, r_items = Rouge().compute_score(gts, res)
    assert scores["CIDEr"] == pytest.approx(c, rel=1e-12)
    np.testing.assert_allclose(items["CIDEr"], c_items, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(items["ROUGE-L"], r_items)
    assert scores["ROUGE-L"] == r


def test_python_tokenizer_is_close_to_ptb():
    """The no-Java tokenizer agrees with the PTB jar on most real sentences."""
    from facelm.eval.tokenize import ptb_tokenize, python_tokenize
    preds, _ = real_corpus()
    texts = list(preds.values())
    java, ours = ptb_tokenize(texts), python_tokenize(texts)
    same = np.mean([a == b for a, b in zip(java, ours)])
    tokens = np.mean([a.split() == b.split() or
                      abs(len(a.split()) - len(b.split())) <= 1 for a, b in zip(java, ours)])
    assert same > 0.97 and tokens > 0.99, (same, tokens)
