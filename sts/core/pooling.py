"""Pooling token states into one vector per input, and detaching an encoder's own pooler."""
from __future__ import annotations

import torch
from torch import nn

from sts.errors import STSError

POOLING_MODES = ("mean", "cls", "max")


def detach_pooler(encoder: nn.Module) -> nn.Module | None:
    """Remove the encoder's own pooler (BERT's tanh layer over [CLS]) and return it.

    Unused parameters would break DDP and waste compute; the cross-encoder reuses its weights
    to initialise its head.
    """
    pooler = getattr(encoder, "pooler", None)
    if pooler is not None:
        encoder.pooler = None
    return pooler


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Sentence embedding from token states: mean over real tokens, [CLS], or max."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(1).values
    raise STSError(f"unknown pooling {mode!r}; choose one of {POOLING_MODES}")
