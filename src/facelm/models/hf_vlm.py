"""Any Hugging Face image-text-to-text model as a `FaceVLM`: InternVL3-*-hf, Qwen2-VL / Qwen2.5-VL,
SmolVLM / Idefics3, LLaVA; from a hub name, a local folder in the hub's layout, or a facelm LoRA
output folder (base + adapter).

Nothing is downloaded unless `name_or_path` is a hub name; a local folder loads as it is, also where
torchvision is missing (see `hf_processor`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..cache import cache_dir
from ..errors import FaceLMError, ModelNotInstalledError
from .base import FaceVLM, ImageInput
from .hub import OFFLINE_HINT
from .hf_inputs import IGNORE_INDEX, encode_examples, encode_prompts


@dataclass(frozen=True)
class Family:
    """Where a model family keeps its parts (attribute paths under the *ForConditionalGeneration)."""

    language_model: str             # the decoder LM: the only place LoRA goes
    vision: tuple[str, ...]         # vision tower and projector: always frozen


# config.model_type -> Family. Plain registry; add a family with `register_family`.
FAMILIES: dict[str, Family] = {
    "internvl": Family("model.language_model", ("model.vision_tower", "model.multi_modal_projector")),
    "qwen2_vl": Family("model.language_model", ("model.visual",)),
    "qwen2_5_vl": Family("model.language_model", ("model.visual",)),
    "llava": Family("model.language_model", ("model.vision_tower", "model.multi_modal_projector")),
    "idefics3": Family("model.text_model", ("model.vision_model", "model.connector")),
    "smolvlm": Family("model.text_model", ("model.vision_model", "model.connector")),
}
ADAPTER_CONFIG = "adapter_config.json"
TINY_SCHEME = "tiny:"  # "tiny:internvl": a download-free model built from config (hf_tiny)


def register_family(model_type: str, family: Family) -> None:
    FAMILIES[model_type] = family


def family_of(model: Any) -> Family:
    model_type = model.config.model_type
    if model_type not in FAMILIES:
        raise ModelNotInstalledError(f"facelm does not know where the language model of a "
                                     f"{model_type!r} model lives", item=model_type,
                                     hint="register it with facelm.models.hf_vlm.register_family")
    return FAMILIES[model_type]


def submodule(model: Any, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part)
    return model


def to_pil(image: ImageInput) -> Any:
    from PIL import Image

    from ..imageio import load_rgb
    return Image.fromarray(load_rgb(image))


class HFVLM(FaceVLM):
    """A `FaceVLM` over a transformers image-text-to-text model and its processor."""

    def __init__(self, model: Any, processor: Any, name: str):
        self.model, self.processor = model, processor
        self.name = f"hf:{name}"
        self.family = family_of(model)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        first = next(self.model.parameters())
        return to_device(batch, first.device, first.dtype)

    def generate(self, images: Sequence[ImageInput], prompt: str, *, max_new_tokens: int = 256,
                 do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> str:
        return self.generate_batch([(images, prompt)], max_new_tokens=max_new_tokens,
                                   do_sample=do_sample, temperature=temperature, seed=seed)[0]

    def generate_batch(self, items: Sequence[tuple[Sequence[ImageInput], str]],
                       **gen: Any) -> list[str]:
        import torch
        seed = gen.pop("seed", 0)
        torch.manual_seed(seed)
        pil = [([to_pil(im) for im in images], q) for images, q in items]
        batch = self._to_device(dict(encode_prompts(self.processor, pil, padding_side="left")))
        tok = self.processor.tokenizer
        sampling = dict(max_new_tokens=gen.get("max_new_tokens", 256),
                        do_sample=gen.get("do_sample", False), pad_token_id=tok.pad_token_id)
        if sampling["do_sample"]:
            sampling["temperature"] = gen.get("temperature", 1.0)
        with torch.inference_mode():
            out = self.model.generate(**batch, **sampling)
        new = out[:, batch["input_ids"].shape[1]:]  # left padding: all prompts end at one column
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    def score_choices(self, images: Sequence[ImageInput], prompt: str,
                      choices: Sequence[str]) -> list[float]:
        """Summed log-probability of each choice's tokens as the assistant's answer."""
        import torch
        pil = [to_pil(im) for im in images]
        batch = encode_examples(self.processor, [(pil, prompt, c) for c in choices],
                                end_of_turn=False)
        batch = self._to_device(dict(batch))
        labels = batch.pop("labels")
        with torch.inference_mode():
            logits = self.model(**batch).logits
        return answer_logprobs(logits, labels)[0].tolist()


def to_device(batch: dict[str, Any], device: Any, dtype: Any) -> dict[str, Any]:
    """`batch` on `device`, floating-point tensors (pixel values) cast to the model's `dtype`."""
    return {k: v.to(device, dtype=dtype) if v.is_floating_point() else v.to(device)
            for k, v in batch.items()}


def answer_logprobs(logits: Any, labels: Any) -> tuple[Any, Any]:
    """Per row: the summed log-probability of the labelled tokens (labels != IGNORE_INDEX) under
    `logits`, and how many there are. Token t+1 is predicted at position t."""
    import torch
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:]
    mask = target != IGNORE_INDEX
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1), mask.sum(dim=1)


def resolve_base(name_or_path: str | Path) -> str:
    """A local folder or hub name for `name_or_path`; builds "tiny:FAMILY" models into the cache."""
    name_or_path = str(name_or_path)
    if name_or_path.startswith(TINY_SCHEME):
        from .hf_tiny import TINY_BUILDERS
        family = name_or_path[len(TINY_SCHEME):]
        if family not in TINY_BUILDERS:
            raise ModelNotInstalledError(f"no tiny model family {family!r}", item=name_or_path,
                                         hint=f"choose one of {sorted(TINY_BUILDERS)}")
        folder = cache_dir() / "tiny" / family
        if not (folder / "config.json").is_file():
            TINY_BUILDERS[family](folder)
        return str(folder)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not (path / ADAPTER_CONFIG).is_file():
            raise ModelNotInstalledError("this folder holds no model (no config.json or "
                                         f"{ADAPTER_CONFIG})", item=str(path),
                                         hint="give a model folder in the hub's layout or a hub name")
        return str(path.resolve())  # absolute: adapters record it as their base
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        raise ModelNotInstalledError("no such model folder, and not a hub name (OWNER/NAME)",
                                     item=name_or_path, hint="check the path")
    return name_or_path  # a hub name: the user asked for it, so transformers may download it


def pick_dtype(dtype: str) -> Any:
    """"auto": bf16 on a GPU that has it, else fp32 (CPU bf16 matmuls are slow and lossy)."""
    import torch
    if dtype == "auto":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    return getattr(torch, dtype)


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model a LoRA adapter folder was trained on."""
    cfg = json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ModelNotInstalledError("the adapter does not name its base model",
                                     item=str(adapter_dir), hint="pass the base explicitly")
    return base


def load_base(name_or_path: str, *, dtype: str = "auto", device: str | None = None,
              **hub_kw: Any) -> tuple[Any, Any]:
    """(model, processor) for a hub name or a local folder in the hub's layout."""
    src = resolve_base(name_or_path)
    if not Path(src).is_dir():   # a hub name: refused in seconds when it cannot be downloaded
        from .hub import hub_kwargs
        hub_kw = {**hub_kwargs(src), **hub_kw}
    from transformers import AutoModelForImageTextToText

    from .hf_processor import load_processor
    try:
        processor = load_processor(src, **hub_kw)
        model = AutoModelForImageTextToText.from_pretrained(src, dtype=pick_dtype(dtype), **hub_kw)
    except OSError as exc:
        raise ModelNotInstalledError(f"cannot load the model ({exc.__class__.__name__}: "
                                     f"{str(exc).splitlines()[0]})", item=name_or_path,
                                     hint=OFFLINE_HINT) from exc
    if device is None:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), processor


def load(name_or_path: str | Path, *, adapter: str | Path | None = None, dtype: str = "auto",
         device: str | None = None, merge: bool = False, **hub_kw: Any) -> HFVLM:
    """The FaceVLM for a hub name, a local model folder, or a LoRA adapter folder (its base is read
    from `adapter_config.json`); `adapter=` adds a LoRA adapter to any base."""
    src = resolve_base(name_or_path)
    if adapter is None and (Path(src) / ADAPTER_CONFIG).is_file():
        adapter, src = src, adapter_base(src)
    model, processor = load_base(src, dtype=dtype, device=device, **hub_kw)
    if adapter is not None:
        from peft import PeftModel
        if not (Path(adapter) / ADAPTER_CONFIG).is_file():
            raise FaceLMError(f"no {ADAPTER_CONFIG} here", item=str(adapter),
                              hint="give the adapter folder written by `facelm train vlm`")
        model = PeftModel.from_pretrained(model, str(adapter)).eval()
        if merge:
            model = model.merge_and_unload()
    return HFVLM(model, processor, name=str(name_or_path))
