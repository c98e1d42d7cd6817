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
        from .generation import decode, generate_ids
        from .grounding import allowed_numbers
        if copy_numbers is None:
            copy_numbers = self.model.config.mode == "grounded"
        out: list[str] = []
        pad = int(self.model.tokenizer.pad_token_id)
        for i in range(0, len(items), self.batch_size):
            chunk = items[i: i + self.batch_size]
            batch = self._to_device(collate(chunk, pad))
            allowed = ([allowed_numbers([it.evidence]) for it in chunk] if copy_numbers else None)
            out += decode(self.model.tokenizer, generate_ids(self.model, batch, allowed_numbers=allowed, **gen))
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
