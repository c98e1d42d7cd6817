"""Processors for Hugging Face VLM folders on machines without torchvision.

The hub folders of InternVL3-*-hf (and Qwen2-VL, SmolVLM) name a torchvision-backed image processor
(`GotOcr2ImageProcessorFast`) and carry a video processor config. `AutoProcessor` then fails on a
CPU-only machine, although facelm never sends video. `load_processor` falls back to the PIL image
processor and to an *image-only* subclass of the same processor class, so the folder loads as it is.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

from ..errors import ModelNotInstalledError


def _internvl() -> type:
    from transformers import InternVLProcessor

    class ImageOnly(InternVLProcessor):
        def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                     image_seq_length: int = 256, chat_template: Any = None, **kwargs: Any) -> None:
            super().__init__(image_processor, tokenizer, None, image_seq_length, chat_template, **kwargs)
    return ImageOnly


def _qwen_vl(class_name: str) -> type:
    """Qwen2-VL and Qwen2.5-VL processors share one signature."""
    import transformers
    base = getattr(transformers, class_name)

    class ImageOnly(base):  # type: ignore[misc, valid-type]
        def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                     chat_template: Any = None, **kwargs: Any) -> None:
            super().__init__(image_processor, tokenizer, None, chat_template, **kwargs)
    return ImageOnly


def _smolvlm() -> type:
    from transformers import SmolVLMProcessor

    class ImageOnly(SmolVLMProcessor):
        def __init__(self, image_processor: Any = None, tokenizer: Any = None, image_seq_len: int = 169,
                     chat_template: Any = None, **kwargs: Any) -> None:
            super().__init__(image_processor, tokenizer, None, image_seq_len, chat_template, **kwargs)
    return ImageOnly


# Processor class name -> builder of its image-only subclass. transformers finds sub-processors (and
# valid kwargs) from the `__init__` code object, so each subclass spells out its signature without
# `video_processor`. Processors without a video processor (LLaVA, Idefics3) need no entry.
IMAGE_ONLY_PROCESSORS: dict[str, Callable[[], type]] = {
    "InternVLProcessor": _internvl,
    "Qwen2VLProcessor": functools.partial(_qwen_vl, "Qwen2VLProcessor"),
    "Qwen2_5_VLProcessor": functools.partial(_qwen_vl, "Qwen2_5_VLProcessor"),
    "SmolVLMProcessor": _smolvlm,
}


@functools.cache
def image_only(class_name: str) -> type:
    """The image-only subclass of the processor class `class_name`, named like its base so that
    saved configs still say e.g. "InternVLProcessor" and load anywhere."""
    if class_name not in IMAGE_ONLY_PROCESSORS:
        import transformers
        return getattr(transformers, class_name)
    sub = IMAGE_ONLY_PROCESSORS[class_name]()
    sub.__name__ = sub.__qualname__ = class_name
    return sub


def _processor_class_name(name_or_path: str, **hub_kw: Any) -> str:
    """The processor class a model folder (or hub repo) names in its configs."""
    from transformers.utils import cached_file
    for fname in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        try:
            path = cached_file(name_or_path, fname, _raise_exceptions_for_missing_entries=False,
                               **hub_kw)
        except OSError:
            path = None
        if path:
            name = json.loads(Path(path).read_text(encoding="utf-8")).get("processor_class")
            if name:
                return name
    raise ModelNotInstalledError("no processor_class in processor_config.json, "
                                 "preprocessor_config.json or tokenizer_config.json",
                                 item=name_or_path, hint="is this an image-text-to-text model folder?")


def load_processor(name_or_path: str, **hub_kw: Any) -> Any:
    """`AutoProcessor.from_pretrained`, falling back to the PIL image processor and an image-only
    processor where the folder names torchvision-backed classes that cannot load here."""
    from transformers import AutoProcessor
    try:
        return AutoProcessor.from_pretrained(name_or_path, **hub_kw)
    except (ImportError, OSError, ValueError) as exc:
        # ImportError: a torchvision-backed class is named; OSError: the processor class expects a
        # video processor config the folder lacks (image-only folders, e.g. saved by facelm);
        # ValueError: transformers >= 5 says the same about a video processor it cannot build
        # (a hub folder without video_preprocessor_config.json, no torchvision). Other
        # ValueErrors (a broken config) are not ours to hide.
        if isinstance(exc, ValueError) and not _video_backend_missing(exc):
            raise
        first = exc
    try:
        name = _processor_class_name(name_or_path, **hub_kw)
    except ModelNotInstalledError:
        raise first from None
    if name not in IMAGE_ONLY_PROCESSORS:
        raise first
    # Without torchvision, AutoImageProcessor picks the PIL backend for a "...Fast" name by itself.
    return image_only(name).from_pretrained(name_or_path, **hub_kw)



def _video_backend_missing(exc: ValueError) -> bool:
    """transformers' ValueErrors for a video processor that needs a missing backend: "... requires
    `torchvision` to be installed" or "Could not load any video processor class ... backend"."""
    text = str(exc)
    return "torchvision" in text or ("video processor" in text and "backend" in text)
