"""An InternVL-architecture VLM around a pretrained causal LM (e.g. the offline SmolLM2-135M), with
the vision tower and projector built from config.

This is how facelm runs a real, small FaceLLM fine-tune without a hub: the language model is real,
the vision side is randomly initialised and stays frozen (LoRA goes on the LM only), so what LoRA
learns is the answer format and whatever the fixed random image features carry. The folder is
written in the hub's layout and loads like InternVL3-*-hf.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hf_tiny import INTERNVL_CHAT_TEMPLATE, INTERNVL_TOKENS


@dataclass(frozen=True)
class VisionSpec:
    """The InternViT-style tower built from config (InternVL3-1B's is 24 layers × 1024 at 448 px)."""

    image_size: int = 112           # one tile; UTKFace chips are 200 px
    patch_size: int = 14
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    downsample_ratio: float = 0.5   # pixel shuffle: (112/14)^2 * 0.25 = 16 tokens per image
    mlp_ratio: int = 4              # MLP width / hidden_size

    @property
    def tokens_per_image(self) -> int:
        side = self.image_size // self.patch_size
        return int(side * side * self.downsample_ratio ** 2)


def build_internvl(tok: Any, text_config: dict[str, Any], vision: VisionSpec, *,
                   tie_word_embeddings: bool, seed: int) -> tuple[Any, Any]:
    """(a seeded, randomly initialised InternVLForConditionalGeneration, its image-only processor)
    for a tokenizer carrying INTERNVL_TOKENS and a text model config."""
    import torch
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration
    from transformers.models.internvl.configuration_internvl import InternVLVisionConfig

    from .hf_processor import image_only
    vis = InternVLVisionConfig(hidden_size=vision.hidden_size, num_hidden_layers=vision.layers,
                               num_attention_heads=vision.heads,
                               intermediate_size=vision.mlp_ratio * vision.hidden_size,
                               image_size=[vision.image_size] * 2, patch_size=[vision.patch_size] * 2)
    cfg = InternVLConfig(vision_config=vis.to_dict(), text_config=text_config,
                         image_token_id=tok.context_image_token_id,
                         image_seq_length=vision.tokens_per_image,
                         downsample_ratio=vision.downsample_ratio,
                         tie_word_embeddings=tie_word_embeddings)
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(cfg)
    image_proc = GotOcr2ImageProcessorPil(size={"height": vision.image_size,
                                                "width": vision.image_size}, crop_to_patches=False)
    proc = image_only("InternVLProcessor")(image_processor=image_proc, tokenizer=tok,
                                           image_seq_length=vision.tokens_per_image,
                                           chat_template=INTERNVL_CHAT_TEMPLATE)
    return model, proc


def build_internvl_on_lm(out: str | Path, lm_dir: str | Path, *, vision: VisionSpec = VisionSpec(),
                         seed: int = 0) -> Path:
    """Write an InternVLForConditionalGeneration whose language model is the causal LM in `lm_dir`
    (a Llama/Qwen2-family folder), plus an image-only InternVL processor, to `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from .hf_tiny import _save
    tok = AutoTokenizer.from_pretrained(str(lm_dir), extra_special_tokens=dict(INTERNVL_TOKENS))
    text = AutoConfig.from_pretrained(str(lm_dir))
    text.vocab_size = len(tok)
    model, proc = build_internvl(tok, text.to_dict(), vision,
                                 tie_word_embeddings=text.tie_word_embeddings, seed=seed)
    _copy_lm(model, AutoModelForCausalLM.from_pretrained(str(lm_dir), dtype=torch.float32), len(tok))
    return _save(model, proc, out)


def _copy_lm(model: Any, lm: Any, vocab: int) -> None:
    """Copy the causal LM's decoder and head. The new image tokens' embeddings start at the mean of
    the existing ones (mean resizing): a neutral start, and they are never predicted as answers."""
    import torch
    lm.resize_token_embeddings(vocab, mean_resizing=True)
    # strict: any name or shape mismatch raises, so a half-copied LM cannot pass silently
    model.model.language_model.load_state_dict(lm.model.state_dict(), strict=True)
    with torch.no_grad():
        model.lm_head.weight.copy_(lm.lm_head.weight)
