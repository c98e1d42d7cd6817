"""Mappers: frozen-encoder features -> k LM-width tokens (ADIFF's mapper), and the prompt mapper
over the prompt's token embeddings. Also the optional small pixel encoder."""
from __future__ import annotations

import torch
from torch import nn


def encoder_stack(d: int, layers: int, heads: int, ff_mult: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=ff_mult * d, dropout=dropout,
                                       batch_first=True, norm_first=True, activation="gelu")
    # enable_nested_tensor off: it warns with norm_first and would change padded outputs' layout
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class FaceMapper(nn.Module):
    """Linear(d_in -> k*d), reshape (k, d), append k learnable constants, Transformer, keep k."""

    def __init__(self, d_in: int, d: int, k: int, layers: int, heads: int, ff_mult: int,
                 dropout: float) -> None:
        super().__init__()
        self.k, self.d = k, d
        self.proj = nn.Linear(d_in, k * d)
        self.prefix_const = nn.Parameter(torch.randn(k, d) * 0.02)
        self.transformer = encoder_stack(d, layers, heads, ff_mult, dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b = feats.shape[0]
        x = self.proj(feats).view(b, self.k, self.d)                        # (B, k, d)
        x = torch.cat([x, self.prefix_const.expand(b, -1, -1)], dim=1)     # (B, 2k, d)
        return self.norm(self.transformer(x)[:, : self.k])                 # (B, k, d)


class PromptMapper(nn.Module):
    """A Transformer over the prompt's LM token embeddings (with positions), residual."""

    def __init__(self, d: int, max_tokens: int, layers: int, heads: int, ff_mult: int,
                 dropout: float) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(max_tokens, d))
        self.transformer = encoder_stack(d, max(layers, 1), heads, ff_mult, dropout)

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = emb.shape[1]
        x = emb + self.pos[:t]                                              # (B, t, d)
        return emb + self.transformer(x, src_key_padding_mask=~mask)        # (B, t, d)


class PixelEncoder(nn.Module):
    """A small CNN over the 32x32 grey aligned crop: lighting and texture the features lack."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.GELU(),    # (B, 16, 16, 16)
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),   # (B, 32, 8, 8)
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GELU(),   # (B, 64, 4, 4)
            nn.Flatten(), nn.Linear(64 * 16, out_dim))

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        side = int(crop.shape[-1] ** 0.5)
        return self.net(crop.view(-1, 1, side, side))                      # (B, out_dim)
