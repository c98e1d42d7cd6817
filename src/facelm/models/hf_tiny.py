"""Tiny image-text-to-text models built from config, with a locally trained tokenizer.

They download nothing and build in a second, so tests (and users without a hub) can exercise the
whole loop: build → LoRA-train → save → reload → merge → generate. Each builder writes a folder in the
hub's layout, which `facelm.models.hf_vlm.load` and `AutoModelForImageTextToText` read as they are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..data.schema import PAIR_QUESTIONS, QA_QUESTIONS

# The official InternVL-hf chat template (as written by transformers' conversion script).
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)
# Qwen2-VL's template, image part only.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The llava-1.5 layout ("USER: <image>\n... ASSISTANT: ..."), ending the assistant turn with the
# end-of-sequence token.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{% if message['role'] == 'assistant' %}{{ '<|im_end|>' }}"
    "{% endif %}{{ ' ' }}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_TOKENS = {"image_token": "<image>"}
INTERNVL_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>",
                   "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
QWEN2_VL_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                   "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"}
CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_CORPUS = [
    "A young woman with long dark hair smiles at the camera in soft, even light.",
    "The man looks slightly to the left; his face is well lit and the photo is sharp.",
    "Same person: the two faces share the nose, eyes and jaw line. Different people: they do not.",
    "Skin texture is smooth with fine wrinkles near the eyes. The expression is neutral or happy.",
    "yes no male female White Black Asian Indian Others child teenager adult senior",
]


def bpe_tokenizer(texts: Iterable[str], special_tokens: Sequence[str], vocab_size: int,
                  **named: Any) -> Any:
    """A byte-level BPE tokenizer (transformers fast tokenizer) trained on `texts`; `named` sets
    its eos/pad/extra special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named)


def train_tokenizer(extra_tokens: dict[str, str], vocab_size: int = 512,
                    corpus: Iterable[str] = ()) -> Any:
    """A byte-level BPE tokenizer trained here on facelm's questions and a few answers, carrying the
    chat tokens and the model family's image tokens as named special tokens."""
    text = list(QA_QUESTIONS.values()) + list(PAIR_QUESTIONS.values()) + _CORPUS + list(corpus)
    return bpe_tokenizer(text * 4, [*CHAT_TOKENS, *extra_tokens.values()], vocab_size,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         extra_special_tokens=dict(extra_tokens))


def _text_config(vocab: int, **over: Any) -> dict[str, Any]:
    base = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, intermediate_size=64, max_position_embeddings=1024,
                tie_word_embeddings=False, bos_token_id=0, eos_token_id=2, pad_token_id=0)
    return {**base, **over}


def build_tiny_internvl(out: str | Path, *, seed: int = 0, image_size: int = 56) -> Path:
    """A 2-layer InternVL (vision and Qwen2 text towers), 4 image tokens per 56-px image."""
    from transformers import Qwen2Config

    from .hf_compose import VisionSpec, build_internvl
    tok = train_tokenizer(INTERNVL_TOKENS)
    text = Qwen2Config(**_text_config(len(tok)))
    vision = VisionSpec(image_size=image_size, patch_size=14, hidden_size=32, layers=2, heads=2,
                        downsample_ratio=0.5, mlp_ratio=2)
    model, proc = build_internvl(tok, text.to_dict(), vision, tie_word_embeddings=False, seed=seed)
    return _save(model, proc, out)


def build_tiny_qwen2_vl(out: str | Path, *, seed: int = 0, image_size: int = 56) -> Path:
    """A 2-layer Qwen2-VL: 56-px images become 4×4 patches, merged 2×2 into 4 image tokens."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from .hf_processor import image_only
    tok = train_tokenizer(QWEN2_VL_TOKENS)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in QWEN2_VL_TOKENS.items()}
    # head_dim 16 -> 8 rotary frequencies, split over (time, height, width)
    text = _text_config(len(tok), rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                   "mrope_section": [2, 3, 3]})
    vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    cfg = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["image_token"],
                        video_token_id=ids["video_token"],
                        vision_start_token_id=ids["vision_bos_token"],
                        vision_end_token_id=ids["vision_eos_token"])
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(cfg)
    pixels = image_size * image_size
    image_proc = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels,
                                          size={"shortest_edge": pixels, "longest_edge": pixels})
    proc = image_only("Qwen2VLProcessor")(image_processor=image_proc, tokenizer=tok,
                                          chat_template=QWEN2_VL_CHAT_TEMPLATE)
    return _save(model, proc, out)


def build_tiny_llava(out: str | Path, *, seed: int = 0, image_size: int = 28) -> Path:
    """A 2-layer LLaVA (CLIP vision tower, Llama text): 28-px images give 2×2 patch tokens (the
    CLS token is dropped by the "default" feature strategy)."""
    import torch
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)
    tok = train_tokenizer(LLAVA_TOKENS)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, image_size=image_size, patch_size=14)
    cfg = LlavaConfig(vision_config=vision.to_dict(), text_config=LlamaConfig(
        **_text_config(len(tok))).to_dict(), image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
        tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg)
    image_proc = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                       crop_size={"height": image_size, "width": image_size})
    proc = LlavaProcessor(image_processor=image_proc, tokenizer=tok, patch_size=14,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          chat_template=LLAVA_CHAT_TEMPLATE)
    return _save(model, proc, out)


def _save(model: Any, processor: Any, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    return out


# family name -> builder(out, seed=...) -> folder. Plain registry for tests and `facelm train vlm
# --base tiny:internvl` (a local, download-free base for trying the pipeline).
TINY_BUILDERS: dict[str, Callable[..., Path]] = {
    "internvl": build_tiny_internvl,
    "qwen2_vl": build_tiny_qwen2_vl,
    "llava": build_tiny_llava,
}
