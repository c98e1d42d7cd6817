"""Batched greedy or sampled decoding after the VerLM prefix, with the LM's KV cache, and
log-likelihood scoring of fixed options."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from .model import VerLM, positions


def _next_token(logits: torch.Tensor, do_sample: bool, temperature: float,
                gen: torch.Generator | None) -> torch.Tensor:
    if not do_sample or temperature <= 0:
        return logits.argmax(-1)                                             # (B,)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


def number_guard(model: VerLM) -> Any:
    """The model's NumberGuard (token texts decoded once per model)."""
    from .grounding import NumberGuard, token_pieces
    if "number_guard" not in model.__dict__:
        model.__dict__["number_guard"] = NumberGuard(token_pieces(model.tokenizer))
    return model.__dict__["number_guard"]


def _guarded(tok: torch.Tensor, logits: torch.Tensor, guard: Any, texts: list[str],
             allowed: Sequence[frozenset[str]], prefixes: list[frozenset[str]], eos: int) -> torch.Tensor:
    """Replace each row's token by the most probable one that copies numbers from its evidence
    (eos included: no stopping inside an unfinished number)."""
    out = tok.clone()
    for i, t in enumerate(tok.tolist()):
        if t == eos and not guard.may_end(texts[i], allowed[i]):
            row = logits[i].clone()
            row[eos] = float("-inf")
            out[i] = guard.choose(row, texts[i], allowed[i], prefixes[i])
        elif not guard.ok(texts[i], t, allowed[i], prefixes[i]):
            out[i] = guard.choose(logits[i], texts[i], allowed[i], prefixes[i])
        texts[i] += guard.pieces[int(out[i])] if int(out[i]) < len(guard.pieces) else ""
    return out


@torch.no_grad()
def generate_ids(model: VerLM, batch: dict[str, torch.Tensor], *, max_new_tokens: int = 256,
                 do_sample: bool = False, temperature: float = 1.0, seed: int = 0,
                 allowed_numbers: Sequence[frozenset[str]] | None = None,
                 banned: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
    """Token ids of each answer (eos excluded). The prefix runs once; each step feeds one token
    per row and reuses the cached keys/values. With `allowed_numbers` (one set per row), every
    number written must be one of the row's (grounded mode: those of its evidence); `banned`
    (token ids per row) are never chosen."""
    eos = int(model.tokenizer.eos_token_id)
    guard = number_guard(model) if allowed_numbers is not None else None
    texts = [""] * batch["feats"].shape[0]
    prefixes = [guard._prefixes(a) for a in allowed_numbers] if guard is not None else []
    gen = torch.Generator().manual_seed(seed) if do_sample else None
    prefix, pmask = model.build_prefix(batch)                                # (B, P, d), (B, P)
    mask = pmask.long()
    out = model.lm(inputs_embeds=prefix, attention_mask=mask, position_ids=positions(pmask),
                   use_cache=True, logits_to_keep=1)
    past, logits = out.past_key_values, out.logits[:, -1]                   # (B, V)
    next_pos = mask.sum(1, keepdim=True)                                     # (B, 1)
    done = torch.zeros(prefix.shape[0], dtype=torch.bool, device=prefix.device)
    steps: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        for i, ids in enumerate(banned or ()):
            if ids:
                logits[i, list(ids)] = float("-inf")
        tok = _next_token(logits, do_sample, temperature, gen)
        if guard is not None:
            tok = _guarded(tok, logits, guard, texts, allowed_numbers, prefixes, eos)
        tok = torch.where(done, torch.full_like(tok, eos), tok)
        steps.append(tok)
        done |= tok == eos
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model.lm(input_ids=tok.unsqueeze(1), attention_mask=mask, position_ids=next_pos,
                       past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1]
        next_pos = next_pos + 1
    rows = torch.stack(steps, dim=1).tolist() if steps else [[] for _ in range(prefix.shape[0])]
    rows = [r[: r.index(eos)] if eos in r else r for r in rows]
    if guard is not None:   # a row cut by max_new_tokens may end inside a number: drop that number
        rows = [trim_open_number(r, guard, a) for r, a in zip(rows, allowed_numbers)]
    return rows


def trim_open_number(row: list[int], guard: Any, allowed: frozenset[str]) -> list[int]:
    """`row` without the tokens of an unfinished number at its end."""
    row = list(row)
    while row and not guard.may_end("".join(guard.pieces[t] for t in row if t < len(guard.pieces)), allowed):
        row.pop()
    return row


@torch.no_grad()
def score_options(model: VerLM, batch: dict[str, torch.Tensor]) -> list[float]:
    """Sum of log-probs of each row's answer tokens (no eos) given its prefix."""
    tok_logp, _ = model.answer_logprobs(batch)
    return tok_logp.sum(1).tolist()


def decode(tokenizer: Any, rows: list[list[int]]) -> list[str]:
    return [tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]
