"""Vision mode's number tokens: the digit codes state the numbers the explanation states (real LFW
pairs), the model puts one token per number in its prefix, and what it writes depends on them."""
from __future__ import annotations

import numpy as np
import torch

from test_verlm import _batch, _env, _model, dataset, tiny_lm  # noqa: F401 - shared fixtures
from test_verlm_grounded import _comparison, _pairs


def _decoded(row: np.ndarray) -> int:
    from facelm.models.verlm.numbers import DIGITS
    digits = "".join(str(int(np.argmax(row[2 + 10 * i: 12 + 10 * i]))) for i in range(DIGITS))
    return int(digits) * (1 if row[0] == 1 else -1)


def test_digit_code_round_trips_sign_and_digits():
    from facelm.models.verlm.numbers import CODE_WIDTH, digit_code
    for v in (0, 7, 66, 100, 999, -4, -38):
        code = digit_code(v)
        assert code.shape == (CODE_WIDTH,) and code.sum() == 4 and _decoded(code) == v
    assert _decoded(digit_code(1234)) == 999          # clipped, never wrapped
    assert _decoded(digit_code(65.6)) == 66


def test_codes_hold_the_numbers_the_template_states(dataset):
    """Decode each real pair's codes and find them, formatted as the explainer formats them, in
    the template's concise text: the tokens carry exactly what a faithful text must say."""
    from facelm.models.verlm.numbers import CODE_WIDTH, NUMBERS, N_NUMBERS, pair_codes
    names = list(NUMBERS)
    for rec in _pairs(dataset, "concise"):
        cmp = _comparison(rec)
        codes = pair_codes(cmp)
        assert codes.shape == (N_NUMBERS + 1, codes.shape[1]) and not codes[-1, :CODE_WIDTH].any()
        value = {n: _decoded(codes[i, :CODE_WIDTH]) for i, n in enumerate(names)}
        for name in ("score", "sface", "dlib", "threshold"):
            assert f"{value[name] / 100:.2f}" in rec.answer, (rec.id, name, value[name], rec.answer)
        if "confidence)" in rec.answer and "over 99%" not in rec.answer:
            assert f"{value['confidence']}%" in rec.answer
        assert codes[-1, CODE_WIDTH] == float(cmp.same)  # the first flag is the verdict
    assert not pair_codes(None).any()


def test_number_tokens_sit_in_the_prefix_and_steer_the_answer(tiny_lm, dataset):
    from facelm.models.verlm.numbers import N_NUMBERS
    from facelm.models.verlm.model import rolled
    plain = _model(tiny_lm)
    model = _model(tiny_lm, number_tokens=True)
    batch, _ = _batch(model, dataset)                      # a pair and a single face
    assert batch["codes"].shape[:2] == (2, N_NUMBERS + 1)
    p0, m0 = plain.build_prefix(_batch(plain, dataset)[0])
    p1, m1 = model.build_prefix(batch)
    # the pair gains one token per number and one of flags; the single face none
    assert m1[0].sum() - m0[0].sum() == N_NUMBERS + 1 and m1[1].sum() == m0[1].sum()
    changed = dict(batch, codes=torch.zeros_like(batch["codes"]))
    with torch.no_grad():
        assert not torch.allclose(model.answer_logprobs(batch)[0], model.answer_logprobs(changed)[0])
    assert torch.equal(rolled(batch)["codes"], batch["codes"].roll(1, dims=0))


def test_number_loss_weight_weights_the_digit_tokens(tiny_lm, dataset):
    import torch.nn.functional as F
    model = _model(tiny_lm, number_loss_weight=5.0).train()   # the test config has no dropout
    batch, _ = _batch(model, dataset, cap=400)
    h, amask, _ = model._hidden(batch)
    ans = batch["answer_ids"][amask]
    ce = F.cross_entropy(model.lm.get_output_embeddings()(h[amask]).float(), ans, reduction="none")
    digit = model._digit_tokens()[ans]
    assert digit.any() and not digit.all()   # the answers state numbers among words
    w = 1.0 + 4.0 * digit.float()
    weighted = model(batch)
    assert torch.allclose(weighted, (ce * w).sum() / w.sum(), atol=1e-5)
    assert not torch.allclose(weighted, ce.mean(), atol=1e-3)
    assert torch.allclose(model.eval()(batch), ce.mean(), atol=1e-5)   # evaluation: the plain mean


def test_int8_linears_match_fp32_and_keep_a_tiny_lm_s_predictions(tiny_lm, dataset, monkeypatch):
    """Int8 weights (per output channel) with bf16 products: close to the fp32 layer, every linear
    of the LM replaced, and the next-token choices of a VerLM kept; FACELM_VERLM_INT8 decides."""
    from facelm.models.verlm import _want_int8
    from facelm.models.verlm.quant import Int8Linear, quantize_linears
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 96)
    x = torch.randn(3, 5, 256)
    q = Int8Linear(lin)
    assert q(x).shape == (3, 5, 96) and q.weight_int8.dtype == torch.int8
    rel = (q(x) - lin(x)).norm() / lin(x).norm()
    assert rel < 0.02, rel
    model = _model(tiny_lm)
    batch, _ = _batch(model, dataset, cap=400)
    with torch.no_grad():
        before, mask = model.answer_logprobs(batch)
        n_linear = sum(isinstance(m, torch.nn.Linear) for m in model.lm.modules())
        assert quantize_linears(model.lm) == n_linear and n_linear > 0
        assert not any(isinstance(m, torch.nn.Linear) for m in model.lm.modules())
        after, _ = model.answer_logprobs(batch)
    assert (after - before)[mask].abs().max() < 0.1
    monkeypatch.setenv("FACELM_VERLM_INT8", "0")
    assert not _want_int8(None, "cpu", default=True) and _want_int8(True, "cpu")
    monkeypatch.setenv("FACELM_VERLM_INT8", "1")
    assert _want_int8(None, "cpu") and not _want_int8(None, "cuda")
    monkeypatch.delenv("FACELM_VERLM_INT8")
    assert _want_int8(None, "cpu", default=True) and not _want_int8(None, "cpu")
