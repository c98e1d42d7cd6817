"""From (images, prompt, answer) to model inputs: cached face features, token ids, and the collate
function that pads a batch (prompts and answers right-padded; the model left-packs its prefix)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .config import VerLMConfig
from .features import (CROP_SIZE, FEATURE_DIM, PAIR_FEATURE_DIM, FaceFeatureExtractor, check_images,
                       feature_vector, pair_features, score_text)


@dataclass(frozen=True)
class FaceItem:
    """One example, ready to batch: 1 or 2 faces, the prompt and (for training) the answer."""
    feats: np.ndarray          # (2, FEATURE_DIM); row 1 is zeros for a single face
    crops: np.ndarray          # (2, CROP_SIZE**2)
    pair: np.ndarray           # (PAIR_FEATURE_DIM,); zeros for a single face
    n_images: int
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...] = ()
    evidence_ids: tuple[int, ...] = ()   # grounded mode: the evidence text, read after the prefix
    evidence: str = ""
    codes: np.ndarray | None = None      # number_tokens: (N_NUMBERS + 1, code width) digit codes


def _comparison(analyses: Sequence[Any]) -> Any:
    """The calibrated comparison of a pair's two faces; None for a single face."""
    from ...verify import compare_analyses
    return compare_analyses(*analyses) if len(analyses) == 2 else None


def face_arrays(images: Sequence[Any], extractor: FaceFeatureExtractor
                ) -> tuple[np.ndarray, np.ndarray, Any, list[Any]]:
    """(feats (2, F), crops (2, C), the pair's Comparison or None, the analyses) for 1 or 2 images;
    each photo is read from the extractor once, and NoFaceError names it."""
    images = check_images(images)
    feats = np.zeros((2, FEATURE_DIM), np.float32)
    crops = np.zeros((2, CROP_SIZE * CROP_SIZE), np.float32)
    analyses = []
    for i, img in enumerate(images):
        fa, crops[i] = extractor.face(img)
        feats[i] = feature_vector(fa)
        analyses.append(fa)
    return feats, crops, _comparison(analyses), analyses


def evidence_text(analyses: Sequence[Any], comparison: Any) -> str:
    """Grounded mode's evidence: the pair's (with both faces) or the single face's."""
    from .grounding import face_evidence_text, pair_evidence_text
    return pair_evidence_text(comparison) if comparison is not None else face_evidence_text(analyses[0])


def encode_text(tok: Any, text: str, limit: int) -> tuple[int, ...]:
    return tuple(tok(text, add_special_tokens=False).input_ids[:limit])


def full_prompt(images: Sequence[Any], prompt: str, cfg: VerLMConfig,
                extractor: FaceFeatureExtractor) -> str:
    """The prompt as the LM reads it: with `score_in_prompt`, a pair's calibrated result follows."""
    images = list(images)
    if not cfg.score_in_prompt or len(images) != 2:
        return prompt
    return prompt + score_text(_comparison([extractor.analysis(img) for img in images]))


def make_item(images: Sequence[Any], prompt: str, tok: Any, cfg: VerLMConfig,
              extractor: FaceFeatureExtractor, answer: str | None = None,
              max_answer_tokens: int = 256) -> FaceItem:
    """One FaceItem (with answer ids ending in eos when `answer` is given, for training)."""
    feats, crops, comparison, analyses = face_arrays(images, extractor)
    pair = pair_features(comparison) if comparison is not None else np.zeros(PAIR_FEATURE_DIM, np.float32)
    answer_ids = () if answer is None else (
        encode_text(tok, answer, max_answer_tokens) + (int(tok.eos_token_id),))
    if cfg.score_in_prompt and comparison is not None:  # as full_prompt, from the same comparison
        prompt += score_text(comparison)
    prompt_ids = encode_text(tok, prompt, cfg.max_prompt_tokens)
    evidence, evidence_ids = "", ()
    if cfg.mode == "grounded":
        evidence = evidence_text(analyses, comparison)
        # the leading newline separates it from the prefix; "Answer:" cues the answer's start
        evidence_ids = encode_text(tok, "\n" + evidence + "\nAnswer:", cfg.max_evidence_tokens)
    codes = None
    if cfg.number_tokens:
        from .numbers import pair_codes
        codes = pair_codes(comparison)
    return FaceItem(feats, crops, pair, len(images), prompt_ids, answer_ids, evidence_ids, evidence,
                    codes)


def _pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    import torch
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask


def collate(items: Sequence[FaceItem], pad_id: int) -> dict[str, Any]:
    """A batch of tensors; `answer_*` only when every item has an answer."""
    import torch
    batch = {
        "feats": torch.from_numpy(np.stack([it.feats for it in items])),         # (B, 2, F)
        "crops": torch.from_numpy(np.stack([it.crops for it in items])),         # (B, 2, C)
        "pair": torch.from_numpy(np.stack([it.pair for it in items])),           # (B, 6)
        "n_images": torch.tensor([it.n_images for it in items]),                 # (B,)
    }
    if items[0].codes is not None:
        batch["codes"] = torch.from_numpy(np.stack([it.codes for it in items]))  # (B, N+1, W)
    batch["prompt_ids"], batch["prompt_mask"] = _pad([it.prompt_ids for it in items], pad_id)
    if any(it.evidence_ids for it in items):
        batch["evidence_ids"], batch["evidence_mask"] = _pad([it.evidence_ids for it in items], pad_id)
    if all(it.answer_ids for it in items):
        batch["answer_ids"], batch["answer_mask"] = _pad([it.answer_ids for it in items], pad_id)
    return batch
