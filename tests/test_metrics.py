"""facelm.eval.metrics: edge cases against pycocoevalcap, BERTScore, no-Java fallback, CLI, bad input."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from test_metrics_realtext import ours_on_corpus, real_corpus


def test_lcs_equals_reference_dynamic_programme():
    from pycocoevalcap.rouge.rouge import my_lcs
    from facelm.eval.metrics_ngrams import lcs_length
    rng = random.Random(0)
    words = "a the face same person left right up down sharp".split()
    for _ in range(1500):
        a = [rng.choice(words) for _ in range(rng.randint(0, 70))]
        b = [rng.choice(words) for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == my_lcs(a, b)


@pytest.mark.parametrize("case", ["short", "empty-ish", "repeats", "one-ref"])
def test_ngram_edge_cases_equal_reference(case):
    """Hypotheses shorter than 4 tokens, single words, repeated n-grams, 1..5 references."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from facelm.eval.metrics_ngrams import ngram_metrics
    rng = random.Random(case)
    words = ["same", "person", "face", "left", "the", "a"]
    lo, hi = {"short": (1, 4), "empty-ish": (1, 2), "repeats": (8, 30), "one-ref": (2, 12)}[case]
    n = 60
    hyps = [" ".join(rng.choice(words[:3] if case == "repeats" else words)
                     for _ in range(rng.randint(lo, hi))) for _ in range(n)]
    refs = [[" ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
             for _ in range(1 if case == "one-ref" else rng.randint(1, 5))] for _ in range(n)]
    ours, _ = ngram_metrics(hyps, refs)
    gts, res = dict(enumerate(refs)), {i: [h] for i, h in enumerate(hyps)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        assert ours[f"BLEU-{k + 1}"] == pytest.approx(bleu[k], rel=1e-12, abs=1e-300)
    assert ours["CIDEr"] == pytest.approx(Cider().compute_score(gts, res)[0], rel=1e-12)
    assert ours["ROUGE-L"] == Rouge().compute_score(gts, res)[0]


def test_ptb_tokenizer_matches_reference_quirks():
    """Brackets survive as -lrb-/-rrb- (lower-cased, so not in the punctuation list), '–' goes."""
    from facelm.eval.tokenize import ptb_tokenize, python_tokenize
    text = "Pose: yaw -10° (gap 30°); 27–33 years, can't tell."
    expected = "pose yaw -10 ° -lrb- gap 30 ° -rrb- 27 33 years ca n't tell"
    assert ptb_tokenize([text, "", "Second line."]) == [expected, "", "second line"]
    assert python_tokenize([text]) == [expected]


def test_bertscore_equals_bert_score_package():
    bert_score = pytest.importorskip("bert_score")
    from facelm.eval.bertscore import bertscore, minilm_dir
    preds, refs = real_corpus()
    ids = sorted(refs)[:12]
    hyps, item_refs = [preds[i] for i in ids], [refs[i] for i in ids]
    ours = bertscore(hyps, item_refs)
    p, r, f = bert_score.score(hyps, item_refs, model_type=str(minilm_dir()), num_layers=6)
    np.testing.assert_allclose(ours, np.stack([p.numpy(), r.numpy(), f.numpy()], 1), atol=2e-5)


def test_bertscore_behaves():
    from facelm.eval.bertscore import bertscore
    text = "These two photos very likely show the same person."
    prf = bertscore([text, text], [[text], ["A cat sleeps on the warm windowsill."]])
    assert prf[0] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert prf[1, 2] < 0.8


def test_compute_metrics_keys_and_scale():
    from facelm.eval.metrics import METRIC_KEYS, compute_metrics
    preds, refs = real_corpus()
    ids = sorted(refs)[:40]
    scores = compute_metrics({i: preds[i] for i in ids}, {i: refs[i] for i in ids})
    assert tuple(scores) == METRIC_KEYS
    assert all(0.0 <= v <= 1.0 for k, v in scores.items() if k != "CIDEr")


def _no_java(monkeypatch, tmp_path):
    """A PATH with no java on it, as on a machine without a Java runtime."""
    import shutil
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("java") is None


def test_without_java_metrics_fall_back_and_say_so(monkeypatch, tmp_path, caplog):
    from facelm.eval.metrics import MetricsConfig, evaluate_texts
    from facelm.eval.metrics_meteor import METEOR_APPROX_KEY
    from facelm.eval.tokenize import JavaNotFoundError
    preds, refs = real_corpus()
    with_java = evaluate_texts(preds, refs, MetricsConfig(bertscore=False, meteor="off"))
    _no_java(monkeypatch, tmp_path)
    res = evaluate_texts(preds, refs, MetricsConfig(bertscore=False))
    assert "METEOR" not in res.scores and METEOR_APPROX_KEY in res.scores
    assert res.tokenizer == "python"
    assert any("Java was not found" in n for n in res.notes)
    assert "Java was not found" in caplog.text
    # the approximation is in METEOR's range but lower (no stems/synonyms/paraphrases)
    assert 0.1 < res.scores[METEOR_APPROX_KEY] < 1.0
    for k in ("BLEU-4", "ROUGE-L", "CIDEr"):   # the Python tokenizer agrees on these texts
        assert res.scores[k] == pytest.approx(with_java.scores[k], abs=0.01)
    with pytest.raises(JavaNotFoundError, match="java was not found"):
        evaluate_texts(preds, refs, MetricsConfig(bertscore=False, meteor="java"))


def test_meteor_approximation_tracks_meteor():
    """Exact-match METEOR follows METEOR 1.5 item by item on real text, a little below it."""
    from facelm.eval.metrics import regroup
    from facelm.eval.metrics_meteor import meteor_approx
    from facelm.eval.tokenize import ptb_tokenize
    preds, refs = real_corpus()
    ours = ours_on_corpus()
    ids = ours.ids
    flat = ptb_tokenize([preds[i] for i in ids] + [r for i in ids for r in refs[i]])
    hyps, item_refs = regroup(flat, [refs[i] for i in ids])
    corpus, approx = meteor_approx(hyps, item_refs)
    real = np.array(ours.per_item["METEOR"])
    assert np.corrcoef(approx, real)[0, 1] > 0.8
    assert corpus <= ours.scores["METEOR"] + 0.02
    identical = [n for n, i in enumerate(ids) if preds[i] in refs[i]]
    assert identical and np.all(approx[identical] > 0.99) and np.all(real[identical] > 0.99)


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_writes_report(tmp_path):
    from facelm.cli import main
    preds, refs = real_corpus()
    ids = sorted(refs)[:30]
    pred = _write_jsonl(tmp_path / "pred.jsonl", [{"id": i, "text": preds[i]} for i in ids])
    ref = _write_jsonl(tmp_path / "ref.jsonl", [{"id": i, "refs": refs[i]} for i in ids])
    out = tmp_path / "report"
    # METEOR's Java run is covered elsewhere; the approximation keeps this test fast
    assert main(["eval", "metrics", "--pred", str(pred), "--ref", str(ref), "--out", str(out),
                 "--no-bertscore", "--no-progress", "--meteor", "approx"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4",
                             "METEOR (no-Java approximation)", "ROUGE-L", "CIDEr"]
    assert (out / "metrics.png").stat().st_size > 5000
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["tokenizer"] == "auto" and config["environment"]["java"]
    assert len((out / "per_item.jsonl").read_text().splitlines()) == 30
    assert "| BLEU-4 |" in (out / "report.md").read_text()


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "text": 3}', "pred.jsonl:2: field 'text' must be str"),
    ('{"text": "x"}', "pred.jsonl:2: missing field 'id'"),
    ('{"id": "a", "text": "x"', "pred.jsonl:2: not JSON"),
    ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}', "pred.jsonl:3: duplicate id 'a'"),
])
def test_cli_bad_prediction_lines_name_file_and_line(tmp_path, capsys, line, message):
    from facelm.cli import main
    pred = tmp_path / "pred.jsonl"
    pred.write_text('{"id": "0", "text": "same person"}\n' + line + "\n")
    ref = _write_jsonl(tmp_path / "ref.jsonl", [{"id": "0", "refs": ["the same person"]}])
    code = main(["eval", "metrics", "--pred", str(pred), "--ref", str(ref),
                 "--out", str(tmp_path / "r"), "--no-bertscore"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_cli_missing_ids_are_reported(tmp_path, capsys):
    from facelm.cli import main
    pred = _write_jsonl(tmp_path / "pred.jsonl", [{"id": "1", "text": "same person"}])
    ref = _write_jsonl(tmp_path / "ref.jsonl", [{"id": 1, "refs": ["x"]}, {"id": 2, "refs": ["y"]}])
    code = main(["eval", "metrics", "--pred", str(pred), "--ref", str(ref),
                 "--out", str(tmp_path / "r"), "--no-bertscore"])
    err = capsys.readouterr().err
    assert code == 2 and "1 id(s) have references but no prediction" in err and "'2'" in err
    assert "pred.jsonl vs" in err


def test_compute_metrics_rejects_wrong_types():
    from facelm.errors import InputFormatError
    from facelm.eval.metrics import compute_metrics
    with pytest.raises(InputFormatError, match="references of 'a' must be a non-empty list"):
        compute_metrics({"a": "x"}, {"a": "x"}, bertscore=False)
    with pytest.raises(InputFormatError, match="prediction 'a' is int"):
        compute_metrics({"a": 1}, {"a": ["x"]}, bertscore=False)
