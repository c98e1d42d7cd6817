"""Int8 weight-only linear layers for CPU inference of the VerLM decoder.

Decoding one token at a time reads every weight of the LM once per token: on this project's
2-core CPU SmolLM2's 211 fp32 linear layers took ~47 ms a token, two thirds of a pair's time
(cProfile, docs/benchmarks/verlm_small.md). Stored as int8 with one scale per output channel and
multiplied in bf16 (`torch._weight_int8pack_mm`, the CPU kernel gpt-fast uses), the same layers
read a quarter of the bytes. Activations stay full range: the dynamic int8 quantisation of
`torch.ao` (activations rounded to int8 per tensor) turned SmolLM2's answers into gibberish.
"""
from __future__ import annotations

import torch
from torch import nn


def available() -> bool:
    """Whether this torch build has the CPU int8 weight-only kernel."""
    return hasattr(torch, "_weight_int8pack_mm")


class Int8Linear(nn.Module):
    """A frozen nn.Linear as int8 weights (symmetric, per output channel) and bf16 scales."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)                  # (out,)
        self.register_buffer("weight_int8", torch.round(w / scale[:, None]).clamp(-127, 127)
                             .to(torch.int8).contiguous())                        # (out, in)
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(),
                                                                  requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch._weight_int8pack_mm(flat, self.weight_int8, self.scale).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def quantize_linears(module: nn.Module) -> int:
    """Replace every nn.Linear inside `module` (in place) by an Int8Linear; how many were
    replaced (0 when the kernel is missing: the module is left as it is)."""
    if not available():
        return 0
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
            count += 1
        else:
            count += quantize_linears(child)
    return count
