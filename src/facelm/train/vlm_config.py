"""The LoRA fine-tuning config for Hugging Face VLMs: a frozen dataclass, two presets, JSON round-trip.

Presets (FaceLLM, DESIGN.md §4):
* "paper": what the FaceLLM paper states: LoRA r=8, α=16 on the language model only, lr 1e-5,
  1 epoch. The paper names no target layers; we take the attention projections.
* "released": the released LLaMA-Factory script: r=16, α=32 on all linear layers of the language
  model, cosine schedule, batch 2 × grad-accum 6, cutoff 2048, bf16.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "vlm_train_config.json"

# LoRA target name -> leaf module names inside the language model (None: every nn.Linear there).
LORA_TARGETS: dict[str, tuple[str, ...] | None] = {
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "all-linear": None,
}
SCHEDULES = ("constant", "linear", "cosine")
# --system-prompt names -> text. FaceLLM trained with LLaMA-Factory's `intern_vl` template, which
# puts this default system turn before every training sample; inference (the hub chat template,
# vLLM, facelm) sends none. "none" (the default) trains as the model is queried; "intern_vl"
# trains as the released recipe did. Any other value is used as the system text itself.
SYSTEM_PROMPTS: dict[str, str] = {
    "none": "",
    "intern_vl": "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
                 "多模态大语言模型。",
}


def system_prompt(value: str) -> str | None:
    """The system text a config's `system_prompt` names (None: no system turn)."""
    return SYSTEM_PROMPTS.get(value, value) or None


@dataclass(frozen=True)
class VLMTrainConfig:
    base: str                           # hub name, local folder or "tiny:FAMILY"
    data: str                           # a facelm dataset folder (records.jsonl) or JSONL file
    out: str
    preset: str = "paper"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target: str = "attention"      # a key of LORA_TARGETS
    lr: float = 1e-5
    epochs: float = 1.0
    max_steps: int = 0                  # > 0: stop after this many optimizer steps
    batch_size: int = 2                 # per device
    grad_accum: int = 1
    schedule: str = "cosine"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    cutoff: int = 2048                  # tokens per sample (prompt with image tokens + answer)
    gradient_checkpointing: bool = True
    precision: str = "auto"             # "auto": bf16 where the GPU has it, else fp32; "bf16"; "fp32"
    save_every: int = 0                 # optimizer steps between checkpoints (0: only at the end)
    keep_checkpoints: int = 2
    seed: int = 0
    limit: int = 0                      # > 0: use only the first N records (smoke runs)
    system_prompt: str = "none"         # a key of SYSTEM_PROMPTS or the system text itself

    def __post_init__(self) -> None:
        if self.lora_target not in LORA_TARGETS:
            raise ValueError(f"lora_target must be one of {sorted(LORA_TARGETS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError("precision must be auto, bf16 or fp32")
        for name in ("lora_r", "batch_size", "grad_accum", "cutoff"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def save(self, folder: str | Path) -> Path:
        from .common import save_config
        return save_config(self, Path(folder) / CONFIG_FILE)

    @classmethod
    def load(cls, folder: str | Path) -> "VLMTrainConfig":
        d = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


# preset name -> field values; the command line's explicit options override them.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(lora_r=8, lora_alpha=16, lora_target="attention", lr=1e-5, epochs=1.0,
                  batch_size=2, grad_accum=1, schedule="cosine", cutoff=2048),
    "released": dict(lora_r=16, lora_alpha=32, lora_target="all-linear", lr=1e-5, epochs=1.0,
                     batch_size=2, grad_accum=6, schedule="cosine", cutoff=2048),
}


def make_config(base: str, data: str, out: str, preset: str = "paper",
                **overrides: Any) -> VLMTrainConfig:
    """A config from a preset plus explicit overrides (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return VLMTrainConfig(base=base, data=data, out=out, preset=preset, **values)
