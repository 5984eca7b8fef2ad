"""Dropout whose CPU masks come from packed random bits.

torch draws a CPU dropout mask one element at a time on one thread (a 64-bit draw per element), so
on 2 cores the masks of MiniLM's hidden and attention dropout took about a sixth of a training step.
Here one 64-bit draw yields four 16-bit lanes, each kept when below the keep probability
(quantised to 1/65536): the same Bernoulli masks in distribution, from the same seeded generator
(so runs and resumed runs stay reproducible), at a quarter of the draws. Elsewhere (GPUs draw
masks in parallel), at inference and at p = 0 everything is torch's own.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

ATTENTION = "sts_packed_dropout"  # the Hugging Face attention implementation registered below
_LANES = 1 << 16


def packed_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """x with each element zeroed with probability p (to 1/65536) and the rest scaled by 1/(1-p)."""
    keep = round((1.0 - p) * _LANES)
    if keep >= _LANES:
        return x
    if keep == 0:
        return torch.zeros_like(x)
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)  # all 64 bits
    lanes = bits.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
    return x * (lanes < keep - _LANES // 2).to(x.dtype) * (_LANES / keep)


class PackedDropout(nn.Dropout):
    """nn.Dropout with packed masks on CPU while training; torch's dropout otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        return packed_dropout(x, self.p)


def packed_attention(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
    dropout: float = 0.0, scaling: float | None = None, **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA, except while training with attention dropout on CPU: there SDPA falls back to its
    unfused math with torch's masks; this is the same math with packed masks."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = kwargs.get("position_bias") is None and not kwargs.get("is_causal", getattr(module, "is_causal", False))
    if dropout == 0.0 or query.device.type != "cpu" or not plain:  # only bidirectional attention without a bias
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    scores = torch.matmul(query, key.transpose(-1, -2)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # sdpa's masks: True where a key may be attended to
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = packed_dropout(torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype), dropout)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, packed_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # without a mask function padding would be attended to


def use_packed_dropout(encoder: nn.Module) -> nn.Module:
    """Swap the encoder's nn.Dropout layers for PackedDropout and, where it runs SDPA through
    Hugging Face's attention interface, its attention dropout too. Returns the encoder."""
    for parent in encoder.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, PackedDropout(child.p, child.inplace).train(child.training))
    config = getattr(encoder, "config", None)
    if getattr(config, "_attn_implementation", None) == "sdpa" and getattr(type(encoder), "_supports_attention_backend", False):
        _register()
        encoder.set_attn_implementation(ATTENTION)
    return encoder
