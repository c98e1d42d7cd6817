"""From (images, prompt, answer) to model inputs: cached face features, token ids, and the collate
function that pads a batch (prompts and answers right-padded; the model left-packs its prefix)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .config import VerLMConfig
from .features import CROP_SIZE, FaceFeatureExtractor, check_images, pair_features, score_text


@dataclass(frozen=True)
class FaceItem:
    """One example, ready to batch: 1 or 2 faces, the prompt and (for training) the answer."""
    feats: np.ndarray          # (2, FEATURE_DIM); row 1 is zeros for a single face
    crops: np.ndarray          # (2, CROP_SIZE**2)
    pair: np.ndarray           # (PAIR_FEATURE_DIM,); zeros for a single face
    n_images: int
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...] = ()


def face_arrays(images: Sequence[Any], extractor: FaceFeatureExtractor,
                names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(feats (2, F), crops (2, C), pair (6,)) for 1 or 2 images; NoFaceError names the photo."""
    images = check_images(images)
    names = list(names) if names else [None] * len(images)
    out = [extractor.features(img, name) for img, name in zip(images, names)]
    feats = np.zeros((2, out[0][0].shape[0]), np.float32)
    crops = np.zeros((2, CROP_SIZE * CROP_SIZE), np.float32)
    for i, (f, c) in enumerate(out):
        feats[i], crops[i] = f, c
    if len(images) == 2:
        pair = pair_features(extractor.analysis(images[0], names[0]), extractor.analysis(images[1], names[1]))
    else:
        pair = np.zeros(6, np.float32)
    return feats, crops, pair


def encode_text(tok: Any, text: str, limit: int) -> tuple[int, ...]:
    return tuple(tok(text, add_special_tokens=False).input_ids[:limit])


def full_prompt(images: Sequence[Any], prompt: str, cfg: VerLMConfig,
                extractor: FaceFeatureExtractor) -> str:
    """The prompt as the LM reads it: with `score_in_prompt`, a pair's calibrated result follows."""
    images = list(images)
    if cfg.score_in_prompt and len(images) == 2:
        return prompt + score_text(extractor.analysis(images[0]), extractor.analysis(images[1]))
    return prompt


def make_item(images: Sequence[Any], prompt: str, tok: Any, cfg: VerLMConfig,
              extractor: FaceFeatureExtractor, answer: str | None = None,
              max_answer_tokens: int = 256) -> FaceItem:
    feats, crops, pair = face_arrays(images, extractor)
    answer_ids = () if answer is None else (
        encode_text(tok, answer, max_answer_tokens) + (int(tok.eos_token_id),))
    text = full_prompt(images, prompt, cfg, extractor)
    return FaceItem(feats, crops, pair, len(list(images)), encode_text(tok, text, cfg.max_prompt_tokens),
                    answer_ids)


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
    batch["prompt_ids"], batch["prompt_mask"] = _pad([it.prompt_ids for it in items], pad_id)
    if all(it.answer_ids for it in items):
        batch["answer_ids"], batch["answer_mask"] = _pad([it.answer_ids for it in items], pad_id)
    return batch
