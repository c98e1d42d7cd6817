"""Chat messages → model tensors, the same way at training and inference.

The prompt is always the processor's chat template with `add_generation_prompt=True`: inference feeds
exactly that, and training appends the answer as the template itself renders the assistant turn
(`full[len(prompt):]`, end-of-turn token included), so train and infer can never disagree on the
template. Labels are -100 everywhere but on those answer tokens.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import InputFormatError

IGNORE_INDEX = -100  # label value the loss skips (prompt, image and padding tokens)
TEXT_KEYS = ("input_ids", "attention_mask")


def messages(n_images: int, question: str, answer: str | None = None,
             system: str | None = None) -> list[dict[str, Any]]:
    """One user turn with all images first, in order, then the question; optionally the answer,
    and a system turn first when `system` is given (LLaMA-Factory's templates add a default one
    in training; see docs/llamafactory.md). Each model's template writes its own image
    placeholders for the {"type": "image"} parts."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": question})
    msgs = [{"role": "user", "content": content}]
    if system:
        msgs.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


def prompt_text(processor: Any, n_images: int, question: str, system: str | None = None) -> str:
    return processor.apply_chat_template(messages(n_images, question, system=system),
                                         add_generation_prompt=True, tokenize=False)


def answer_text(processor: Any, n_images: int, question: str, answer: str,
                system: str | None = None) -> str:
    """The text the template puts after the generation prompt for this answer (with end of turn)."""
    prompt = prompt_text(processor, n_images, question, system)
    full = processor.apply_chat_template(messages(n_images, question, answer, system),
                                         tokenize=False)
    if not full.startswith(prompt):
        raise InputFormatError("the chat template does not render the answer after the generation "
                               "prompt, so training and inference would see different text",
                               item=type(processor).__name__, hint="use a model whose chat template "
                               "supports add_generation_prompt")
    return full[len(prompt):]


def encode_prompts(processor: Any, items: Sequence[tuple[Sequence[Any], str]], *,
                   padding_side: str = "left", system: str | None = None) -> dict[str, Any]:
    """Processor output for (images, question) items as generation prompts, padded together."""
    texts = [prompt_text(processor, len(images), q, system) for images, q in items]
    images = [list(imgs) for imgs, _ in items]
    # Text-only prompts (FaceXBench's tools questions): processors refuse lists of empty lists
    return processor(text=texts, images=images if any(images) else None, padding=True,
                     padding_side=padding_side, return_tensors="pt")


def encode_examples(processor: Any, items: Sequence[tuple[Sequence[Any], str, str]], *,
                    cutoff: int | None = None, end_of_turn: bool = True,
                    ids: Sequence[str] | None = None, system: str | None = None) -> dict[str, Any]:
    """Training tensors for (images, question, answer) items: the prompts as the processor builds
    them (image tokens expanded), then the answer tokens; right-padded; labels on answers only.

    `end_of_turn=False` keeps only the answer itself (used to score multiple-choice options).
    `cutoff` truncates answers so a sample has at most that many tokens. `system`: a system turn
    before each prompt.
    """
    enc = encode_prompts(processor, [(imgs, q) for imgs, q, _ in items], padding_side="left",
                         system=system)
    tok = processor.tokenizer
    rows: list[dict[str, list[int]]] = []
    # per-token fields (ids, mask, token types) get the answer appended; image tensors pass through
    per_token = [k for k, v in enc.items() if not k.startswith("pixel") and hasattr(v, "shape")
                 and v.shape == enc["input_ids"].shape]
    for i, (imgs, question, answer) in enumerate(items):
        keep = enc["attention_mask"][i].bool()  # left padding: the prompt is the masked-in tail
        row = {k: enc[k][i][keep].tolist() for k in per_token}
        suffix = (answer_text(processor, len(imgs), question, answer, system) if end_of_turn
                  else answer)
        if end_of_turn and tok.eos_token and tok.eos_token not in suffix:
            suffix += tok.eos_token  # templates that close no turn (llava-1.5): learn to stop
        ans = tok(suffix, add_special_tokens=False)["input_ids"]
        n_prompt = len(row["input_ids"])
        if cutoff is not None:
            if n_prompt >= cutoff:
                name = ids[i] if ids else f"item {i}"
                raise InputFormatError(f"the prompt alone has {n_prompt} tokens (cutoff {cutoff})",
                                       item=name, hint="raise --cutoff or use fewer image tiles")
            ans = ans[: cutoff - n_prompt]
        for k in per_token:  # other per-token fields (token types) mark answer tokens as text (0)
            row[k] = row[k] + ([1] * len(ans) if k == "attention_mask" else
                               ans if k == "input_ids" else [0] * len(ans))
        row["labels"] = [IGNORE_INDEX] * n_prompt + ans
        rows.append(row)
    out = _pad_right(rows, pad_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
    for k, v in enc.items():  # pixel values, grids, patch counts: as the processor batched them
        if k not in per_token:
            out[k] = v
    return out


def _pad_right(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    import torch
    width = max(len(r["input_ids"]) for r in rows)
    fills = {"input_ids": pad_id, "labels": IGNORE_INDEX}  # every other field pads with 0
    return {k: torch.tensor([r[k] + [fills.get(k, 0)] * (width - len(r[k])) for r in rows])
            for k in rows[0]}
