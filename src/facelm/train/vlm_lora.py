"""LoRA on the language model only: the vision tower and projector stay frozen (FaceLLM's recipe).

The vision towers also have `q_proj`/`k_proj`/`v_proj`, so targets are a regex anchored at the
family's language-model path, never bare leaf names (DESIGN.md §3).
"""
from __future__ import annotations

import re
from typing import Any

from ..errors import FaceLMError
from ..models.hf_vlm import Family, family_of, submodule
from .vlm_config import LORA_TARGETS, VLMTrainConfig


def lm_target_regex(model: Any, family: Family, target: str) -> str:
    """A regex (peft full-matches it against module names) naming the LM's target Linear layers."""
    import torch.nn as nn
    leaves = LORA_TARGETS[target]
    if leaves is None:
        lm = submodule(model, family.language_model)
        leaves = tuple(sorted({name.rsplit(".", 1)[-1] for name, mod in lm.named_modules()
                               if isinstance(mod, nn.Linear)}))
    alternatives = "|".join(re.escape(leaf) for leaf in leaves)
    return rf"{re.escape(family.language_model)}\..*\.({alternatives})"


def apply_lora(model: Any, cfg: VLMTrainConfig) -> Any:
    """`model` wrapped by peft with LoRA on its language model; checks nothing else trains."""
    from peft import LoraConfig, get_peft_model
    family = family_of(model)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=lm_target_regex(model, family, cfg.lora_target), bias="none")
    peft_model = get_peft_model(model, lora)
    check_trainable(peft_model, family)
    return peft_model


def trainable_names(model: Any) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def check_trainable(peft_model: Any, family: Family) -> None:
    """Raise unless every trainable parameter is a LoRA weight inside the language model."""
    names = trainable_names(peft_model)
    lm = f"base_model.model.{family.language_model}."
    bad = [n for n in names if not (n.startswith(lm) and ".lora_" in n)]
    if bad or not names:
        raise FaceLMError(f"LoRA would train {len(bad)} parameter(s) outside the language model "
                          f"(e.g. {bad[:3]})" if bad else "LoRA matched no language-model layer",
                          item=peft_model.config.model_type,
                          hint="check the family's language_model path in facelm.models.hf_vlm")
