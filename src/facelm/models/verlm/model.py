"""VerLM: face features -> mappers -> [img1, sep, img2, score, prompt] -> cross-projection ->
prefix (`inputs_embeds`) of the decoder LM, followed by the answer tokens."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import VerLMConfig
from .cross_projection import CrossProjection
from .lm import lm_width, separator_id
from .mapper import FaceMapper, PixelEncoder, PromptMapper
from .separator import Separator


def left_pack(x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid tokens to the right end, in order: (B, L, d) -> (B, P, d), P = max
    valid count. Left padding lets a batch of prefixes end on the same column for decoding."""
    order = torch.sort(valid.to(torch.int8), dim=1, stable=True).indices     # invalid first
    x = x.gather(1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    valid = valid.gather(1, order)
    p = int(valid.sum(1).max())
    return x[:, -p:], valid[:, -p:]                                          # (B, P, d), (B, P)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: (B, L) long."""
    return (mask.long().cumsum(1) - 1).clamp(min=0)


class NumberTokens(nn.Module):
    """Digit codes of the stated numbers (numbers.pair_codes) -> one token each, plus a learned
    embedding per quantity so the LM can tell the fused score's token from dlib's."""

    def __init__(self, d: int) -> None:
        super().__init__()
        from .numbers import CODE_WIDTH, FLAG_WIDTH, N_NUMBERS
        self.n = N_NUMBERS + 1
        self.proj = nn.Linear(CODE_WIDTH + FLAG_WIDTH, d)
        self.which = nn.Parameter(torch.randn(self.n, d) * 0.02)
        # at unit scale like the face tokens (FaceMapper's norm): a raw projection of a few
        # one-hots starts ~5x smaller than its neighbours, and a 400-step run never read it
        self.norm = nn.LayerNorm(d)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(codes) + self.which)                      # (B, N+1, d)


class VerLM(nn.Module):
    def __init__(self, config: VerLMConfig, lm: Any, tokenizer: Any) -> None:
        super().__init__()
        c, d = config, lm_width(lm)
        self.config, self.lm, self.tokenizer = config, lm, tokenizer
        in_dim = c.feature_dim + (c.pixel_dim if c.pixel_encoder else 0)
        self.pixel = PixelEncoder(c.pixel_dim) if c.pixel_encoder else None
        self.mappers = nn.ModuleList(FaceMapper(in_dim, d, c.prefix_len, c.mapper_layers, c.n_heads,
                                                c.ff_mult, c.dropout) for _ in range(2))
        self.prompt_mapper = PromptMapper(d, c.max_prompt_tokens, c.prompt_layers, c.n_heads,
                                          c.ff_mult, c.dropout)
        self.separator = Separator(c.separator, d, separator_id(tokenizer))
        self.score_proj = nn.Linear(c.pair_feature_dim, d) if c.score_token else None
        self.numbers = NumberTokens(d) if c.number_tokens else None
        max_len = 2 * c.prefix_len + 2 + c.max_prompt_tokens + (self.numbers.n if self.numbers else 0)
        self.cross = (CrossProjection(d, max_len, c.cross_layers, c.n_heads, c.ff_mult, c.dropout)
                      if c.fusion == "cross" else None)
        # The prefix modules work at unit scale; this maps them to the LM's embedding scale
        # (SmolLM2's embeddings have std ~0.14) so a frozen LM sees inputs of a familiar size.
        std = lm.get_input_embeddings().weight.detach().float().std()
        self.register_buffer("emb_std", std.reshape(1).clone())

    def prefix_modules(self) -> list[nn.Module]:
        """Everything trained in stage 1 (all but the LM)."""
        return [m for m in (self.pixel, self.mappers, self.prompt_mapper, self.separator,
                            self.score_proj, self.numbers, self.cross) if m is not None]

    def _image_tokens(self, batch: dict[str, torch.Tensor], slot: int) -> torch.Tensor:
        feats = batch["feats"][:, slot]                                      # (B, F)
        if self.pixel is not None:
            feats = torch.cat([feats, self.pixel(batch["crops"][:, slot])], dim=-1)
        return self.mappers[slot](feats)                                     # (B, k, d)

    def build_prefix(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(prefix (B, P, d), mask (B, P)), left-padded."""
        c, s = self.config, self.emb_std
        embed = self.lm.get_input_embeddings()
        b, k, dev = batch["feats"].shape[0], c.prefix_len, batch["feats"].device
        two = batch["n_images"].to(dev) == 2                                 # (B,)
        img1, img2 = self._image_tokens(batch, 0) * s, self._image_tokens(batch, 1) * s
        sep = self.separator(b, embed).to(img1.dtype)                        # (B, 1, d)
        score = (self.score_proj(batch["pair"]).unsqueeze(1) * s if self.score_proj is not None
                 else torch.zeros_like(sep))                                 # (B, 1, d)
        pmask = batch["prompt_mask"]
        prompt = self.prompt_mapper(embed(batch["prompt_ids"]) / s, pmask) * s  # (B, t, d)
        parts = [img1, sep, img2, score]
        ones = torch.ones(b, k, dtype=torch.bool, device=dev)
        masks = [ones, (two & self.separator.enabled).unsqueeze(1), two.unsqueeze(1).expand(b, k),
                 (two & (self.score_proj is not None)).unsqueeze(1)]
        if self.numbers is not None:
            parts.append(self.numbers(batch["codes"]) * s)                   # (B, N+1, d)
            masks.append(two.unsqueeze(1).expand(b, self.numbers.n))
        x = torch.cat([*parts, prompt], dim=1)                               # (B, 2k+2(+N+1)+t, d)
        valid = torch.cat([*masks, pmask], dim=1)
        if self.cross is not None:
            x = self.cross(x / s, valid) * s
        if "evidence_ids" in batch:  # grounded: the evidence as plain LM tokens after the prefix
            x = torch.cat([x, embed(batch["evidence_ids"]).to(x.dtype)], dim=1)    # (B, L+E, d)
            valid = torch.cat([valid, batch["evidence_mask"]], dim=1)
        return left_pack(x, valid)

    def _hidden(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
        prefix, pmask = self.build_prefix(batch)
        ans, amask = batch["answer_ids"], batch["answer_mask"]               # (B, A)
        inp = ans
        if self.training and self.config.answer_dropout > 0:
            # word dropout on the inputs only (targets stay): the history alone no longer tells
            # the LM the template's next token, so it has to use the prefix
            drop = torch.rand(ans.shape, device=ans.device) < self.config.answer_dropout
            inp = torch.where(drop, torch.full_like(ans, int(self.tokenizer.pad_token_id)), ans)
        emb = torch.cat([prefix, self.lm.get_input_embeddings()(inp).to(prefix.dtype)], dim=1)
        mask = torch.cat([pmask, amask], dim=1)                              # (B, P+A)
        h = self.lm.base_model(inputs_embeds=emb, attention_mask=mask.long(),
                               position_ids=positions(mask)).last_hidden_state
        p = prefix.shape[1]
        # position P-1+j predicts answer token j
        return h[:, p - 1: p - 1 + ans.shape[1]], amask, p                   # (B, A, d)

    def _digit_tokens(self) -> torch.Tensor:
        """(V,) bool: which vocabulary items hold a digit (computed once per model)."""
        if "digit_tokens" not in self.__dict__:
            from .generation import number_guard   # its token texts, decoded once per model
            pieces = number_guard(self).pieces
            v = self.lm.get_output_embeddings().weight.shape[0]
            mask = torch.zeros(v, dtype=torch.bool)
            mask[: len(pieces)] = torch.tensor([any(ch.isdigit() for ch in p) for p in pieces][:v])
            self.__dict__["digit_tokens"] = mask
        return self.__dict__["digit_tokens"].to(self.emb_std.device)

    def answer_logprobs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-token log-probs of the answers (B, A), answer mask (B, A))."""
        h, amask, _ = self._hidden(batch)
        return self._token_logprobs(h, batch["answer_ids"], amask), amask

    def _token_logprobs(self, h: torch.Tensor, ans: torch.Tensor, amask: torch.Tensor) -> torch.Tensor:
        logits = self.lm.get_output_embeddings()(h[amask]).float()          # (N, V), answers only
        tok = torch.zeros(ans.shape, dtype=logits.dtype, device=logits.device)
        tok[amask] = torch.log_softmax(logits, dim=-1).gather(-1, ans[amask].unsqueeze(-1)).squeeze(-1)
        return tok                                                          # (B, A), 0 at padding

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over answer tokens only (prefix and padding carry no loss), plus the
        contrastive conditioning term in training when `contrast_weight` > 0."""
        h, amask, _ = self._hidden(batch)
        ans = batch["answer_ids"]
        c = self.config
        if not (self.training and c.contrast_weight > 0 and ans.shape[0] > 1):
            logits = self.lm.get_output_embeddings()(h[amask])              # (N, V), answers only
            if not (self.training and c.number_loss_weight != 1.0):
                return F.cross_entropy(logits.float(), ans[amask])
            ce = F.cross_entropy(logits.float(), ans[amask], reduction="none")
            w = 1.0 + (c.number_loss_weight - 1.0) * self._digit_tokens()[ans[amask]].float()
            return (ce * w).sum() / w.sum()
        own = self._token_logprobs(h, ans, amask)                           # (B, A)
        other = self._token_logprobs(self._hidden(rolled(batch))[0], ans, amask)
        n = amask.sum(1).clamp(min=1)
        gain = (own - other).sum(1) / n                                     # (B,) nats per token
        ce = -own.sum() / amask.sum()
        return ce + c.contrast_weight * F.relu(c.contrast_margin - gain).mean()


CONDITIONING = ("feats", "crops", "pair", "n_images", "evidence_ids", "evidence_mask", "codes")


def rolled(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch with each item's face inputs (and evidence) taken from the next item: the same
    prompts and answers, the wrong pairs."""
    return {k: (v.roll(1, dims=0) if k in CONDITIONING else v) for k, v in batch.items()}
