"""A LLaMA-Factory training YAML with FaceLLM's released settings, for a facelm llamafactory export.

FaceLLM's release trains with LLaMA-Factory (DESIGN.md §4): template `intern_vl`, LoRA r=16, α=32 on
`all` linear layers (LLaMA-Factory keeps the vision tower and projector frozen by default, so that
means the language model's), lr 1e-5, cosine schedule, 1 epoch, bf16, cutoff 2048, and per device
batch × gradient accumulation of 10 × 8 for the 1B and 8B students, 2 × 6 for 38B.

The `intern_vl` template adds a default system prompt to every training sample (see
`facelm.train.vlm_config.SYSTEM_PROMPTS`); the hub chat template, vLLM and facelm send none at
inference. `facelm train vlm --system-prompt intern_vl` trains the way this YAML does.
"""
from __future__ import annotations

from dataclasses import dataclass

# student size -> (hub model, per-device batch, gradient accumulation)
STUDENTS: dict[str, tuple[str, int, int]] = {
    "1b": ("OpenGVLab/InternVL3-1B-hf", 10, 8),
    "8b": ("OpenGVLab/InternVL3-8B-hf", 10, 8),
    "38b": ("OpenGVLab/InternVL3-38B-hf", 2, 6),
}
YAML_NAME = "facelm_lora_sft.yaml"


@dataclass(frozen=True)
class ReleasedRecipe:
    template: str = "intern_vl"
    finetuning_type: str = "lora"
    lora_target: str = "all"
    lora_rank: int = 16
    lora_alpha: int = 32
    learning_rate: str = "1.0e-5"       # YAML float, written as LLaMA-Factory's examples do
    num_train_epochs: float = 1.0
    lr_scheduler_type: str = "cosine"
    cutoff_len: int = 2048


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def released_yaml(dataset: str, dataset_dir: str, size: str, *, model: str | None = None,
                  output_dir: str | None = None, recipe: ReleasedRecipe = ReleasedRecipe()) -> str:
    """The YAML text for `llamafactory-cli train`: `dataset` is the dataset_info.json entry (e.g.
    NAME_train) in `dataset_dir`; `size` a key of STUDENTS; `model` overrides the hub name."""
    if size not in STUDENTS:
        raise ValueError(f"size must be one of {sorted(STUDENTS)}")
    hub, batch, accum = STUDENTS[size]
    sections = {
        "model": {"model_name_or_path": model or hub, "trust_remote_code": True},
        "method": {"stage": "sft", "do_train": True, "finetuning_type": recipe.finetuning_type,
                   "lora_target": recipe.lora_target, "lora_rank": recipe.lora_rank,
                   "lora_alpha": recipe.lora_alpha, "freeze_vision_tower": True,
                   "freeze_multi_modal_projector": True},
        "dataset": {"dataset": dataset, "dataset_dir": dataset_dir, "template": recipe.template,
                    "cutoff_len": recipe.cutoff_len, "overwrite_cache": True,
                    "preprocessing_num_workers": 16},
        "output": {"output_dir": output_dir or f"saves/facellm-{size}/lora/sft",
                   "logging_steps": 10, "save_steps": 500, "plot_loss": True,
                   "overwrite_output_dir": True},
        "train": {"per_device_train_batch_size": batch, "gradient_accumulation_steps": accum,
                  "learning_rate": recipe.learning_rate,
                  "num_train_epochs": recipe.num_train_epochs,
                  "lr_scheduler_type": recipe.lr_scheduler_type, "bf16": True,
                  "ddp_timeout": 180000000},
    }
    lines = ["# FaceLLM's released LoRA recipe, written by `facelm data export --format llamafactory`.",
             "# The intern_vl template adds a default system prompt in training that inference",
             "# lacks; see facelm's docs/llamafactory.md.",
             f"# Run: llamafactory-cli train {YAML_NAME}"]
    for title, fields in sections.items():
        lines.append(f"\n### {title}")
        lines += [f"{k}: {_scalar(v)}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"
