"""A tiny Llama-style decoder and a byte-level BPE tokenizer trained on given texts, saved as a
Hugging Face folder usable as `VerLMConfig.lm`. For unit tests and for CPU-sized experiments
where even a truncated SmolLM2 is too slow (see docs/benchmarks/verlm.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

EOS, PAD = "<|endoftext|>", "<pad>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer (transformers fast tokenizer) with <|endoftext|> as eos."""
    from ..hf_tiny import bpe_tokenizer
    return bpe_tokenizer(texts, [EOS, PAD], vocab_size, eos_token=EOS, pad_token=PAD)


def build_tiny_lm(texts: Iterable[str], folder: str | Path, *, vocab_size: int = 512,
                  hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """Save a randomly initialised (seeded) tiny LlamaForCausalLM and its tokenizer to `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    tok = train_tokenizer(texts, vocab_size)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 3,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=1024, tie_word_embeddings=True,
                      bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def pretrain_text(folder: str | Path, texts: list[str], *, steps: int = 200, batch_size: int = 16,
                  lr: float = 3e-3, max_len: int = 96, seed: int = 0) -> list[float]:
    """Plain next-token training of the LM in `folder` on `texts` (text only, no faces), saved in
    place: the "pretrained decoder" that VerLM's staged training assumes. Returns the losses."""
    import random
    import torch
    from tqdm import tqdm
    from .lm import load_lm
    model, tok = load_lm(str(folder))
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.1, 1 - s / steps))
    model.train()
    losses = []
    for _ in (bar := tqdm(range(steps), desc="text pretraining")):
        rows = [tok(t, add_special_tokens=False).input_ids[: max_len - 1] + [tok.eos_token_id]
                for t in rng.sample(texts, batch_size)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = labels[i, : len(r)] = torch.tensor(r)
        loss = model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.save_pretrained(folder)
    return losses
