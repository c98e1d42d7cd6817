"""The separator token between the two images' tokens: the LM's end-of-text embedding (as ADIFF),
a learned vector, or none."""
from __future__ import annotations

import torch
from torch import nn


class Separator(nn.Module):
    def __init__(self, kind: str, d: int, eos_id: int) -> None:
        super().__init__()
        self.kind, self.eos_id = kind, eos_id
        self.learned = nn.Parameter(torch.randn(d) * 0.02) if kind == "learned" else None

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def forward(self, batch: int, embed: nn.Embedding) -> torch.Tensor:
        """(B, 1, d) separator tokens (zeros when disabled; the caller masks them out)."""
        if self.kind == "learned":
            vec = self.learned
        elif self.kind == "eos":
            vec = embed.weight[self.eos_id]
        else:
            vec = torch.zeros_like(embed.weight[0])
        return vec.view(1, 1, -1).expand(batch, 1, -1)
