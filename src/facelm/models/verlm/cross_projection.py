"""Cross-projection (ADIFF): a Transformer with full attention over
[img1 (k), sep (1), img2 (k), score (1), prompt (t)], so each image's tokens see the other's and
the prompt; its output is the LM prefix. `concat` fusion skips it (identity), for the ablation."""
from __future__ import annotations

import torch
from torch import nn

from .mapper import encoder_stack


class CrossProjection(nn.Module):
    def __init__(self, d: int, max_len: int, layers: int, heads: int, ff_mult: int,
                 dropout: float) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(max_len, d))
        self.transformer = encoder_stack(d, layers, heads, ff_mult, dropout)
        self.norm = nn.LayerNorm(d)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # x: (B, L, d) in the fixed layout; valid: (B, L) bool (absent image 2, separator, padding)
        h = self.transformer(x + self.pos[: x.shape[1]], src_key_padding_mask=~valid)
        return x + self.scale * self.norm(h)                               # (B, L, d)
