"""VerLM behind the shared FaceVLM interface: generate, generate_batch and score_choices."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from ..base import FaceVLM, ImageInput
from .features import FaceFeatureExtractor
from .inputs import FaceItem, collate, encode_text, make_item


class VerLMFaceVLM(FaceVLM):
    name = "verlm"

    def __init__(self, model: Any, *, extractor: FaceFeatureExtractor | None = None,
                 device: str | None = None, batch_size: int = 8) -> None:
        import torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.extractor = extractor or FaceFeatureExtractor()
        self.batch_size = batch_size

    def item(self, images: Sequence[ImageInput], prompt: str) -> FaceItem:
        return make_item(images, prompt, self.model.tokenizer, self.model.config, self.extractor)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device) for k, v in batch.items()}

    def generate(self, images: Sequence[ImageInput], prompt: str, *, max_new_tokens: int = 256,
                 do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> str:
        return self.generate_batch([(images, prompt)], max_new_tokens=max_new_tokens,
                                   do_sample=do_sample, temperature=temperature, seed=seed)[0]

    def generate_batch(self, items: Sequence[tuple[Sequence[ImageInput], str]], **gen: Any) -> list[str]:
        """Answers in input order, decoded `batch_size` items at a time."""
        prepared = [self.item(images, prompt) for images, prompt in items]
        return self.generate_items(prepared, **gen)

    def generate_items(self, items: Sequence[FaceItem], *, copy_numbers: bool | None = None,
                       **gen: Any) -> list[str]:
        """Answers for prepared items. In grounded mode numbers are copied from each item's
        evidence (`copy_numbers`, default on; off only to measure what the guard changes)."""
        from .grounding import allowed_numbers
        if copy_numbers is None:
            copy_numbers = self.model.config.mode == "grounded"
        gen.setdefault("max_new_tokens", 320)  # a detailed pair explanation is ~250 SmolLM2 tokens
        out: list[str] = []
        for i in range(0, len(items), self.batch_size):
            chunk = list(items[i: i + self.batch_size])
            allowed = [allowed_numbers([it.evidence]) for it in chunk] if copy_numbers else None
            out += self._decode(chunk, allowed, None, gen)
        if copy_numbers:
            out = self._fix_verdicts(items, out, gen)
        return out

    def _decode(self, chunk: list[FaceItem], allowed: Any, banned: Any, gen: dict[str, Any]) -> list[str]:
        from .generation import decode, generate_ids
        batch = self._to_device(collate(chunk, int(self.model.tokenizer.pad_token_id)))
        return decode(self.model.tokenizer, generate_ids(self.model, batch, allowed_numbers=allowed,
                                                         banned=banned, **gen))

    def _fix_verdicts(self, items: Sequence[FaceItem], out: list[str], gen: dict[str, Any]) -> list[str]:
        """Grounded pairs whose text does not state the evidence's verdict are decoded again with
        the other verdict's word ("same" / "different") forbidden: the decision is the calibrated
        score's, the LM only words it."""
        from .generation import number_guard
        from .grounding import allowed_numbers, verdict_word_ids
        from .verdict import agrees
        redo = [i for i, it in enumerate(items) if it.n_images == 2 and it.evidence
                and not agrees(out[i], it.evidence.startswith("same person"))]
        for i in redo:
            same = items[i].evidence.startswith("same person")
            ban = [verdict_word_ids(number_guard(self.model).pieces, "different" if same else "same")]
            out[i] = self._decode([items[i]], [allowed_numbers([items[i].evidence])], ban, gen)[0]
        return out

    def score_choices(self, images: Sequence[ImageInput], prompt: str,
                      choices: Sequence[str]) -> list[float]:
        from .generation import score_options
        base = self.item(images, prompt)
        tok = self.model.tokenizer
        # a leading space tokenises an option the way it would follow the prompt in running text
        rows = [replace(base, answer_ids=encode_text(tok, " " + c.strip(), 64) or (int(tok.eos_token_id),))
                for c in choices]
        batch = self._to_device(collate(rows, int(tok.pad_token_id)))
        return score_options(self.model, batch)
