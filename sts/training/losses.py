"""Training objectives. Each takes the model's output and gold in 0-1.

`takes_logits` says whether a loss wants the raw output (before the model's activation);
`ranks_within_batch` whether it compares the pairs of a batch with each other, so batches should
mix the data (length-grouped batches narrow what each batch ranks).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineMSELoss(nn.Module):
    """MSE between predicted similarity and gold (Sentence-BERT's CosineSimilarityLoss)."""

    takes_logits = False
    ranks_within_batch = False

    def forward(self, score: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(score.float(), gold.float())


class CoSENTLoss(nn.Module):
    """CoSENT (Su, 2022): for every pair of pairs with gold_i > gold_j, push score_i above score_j.

    loss = log(1 + sum exp(scale * (s_j - s_i))). Ranking-only, so it optimises what Spearman measures.
    `on_logits=true` ranks a cross-encoder's raw logits (same order as its sigmoid scores, but
    unbounded, so scale 1 suits them); this is RankNet over all pairs of the batch.
    """

    ranks_within_batch = True

    def __init__(self, scale: float = 20.0, on_logits: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.takes_logits = on_logits

    def forward(self, score: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        score = score.float() * self.scale
        diff = score[None, :] - score[:, None]  # diff[i, j] = s_j - s_i
        diff = diff.masked_fill(gold[:, None] <= gold[None, :], float("-inf"))
        return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)


class BCELoss(nn.Module):
    """Binary cross-entropy on the logit, with graded gold in 0-1 as soft targets."""

    takes_logits = True
    ranks_within_batch = False

    def forward(self, logit: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logit.float(), gold.float())


class WeightedSum(nn.Module):
    """A weighted sum of losses over the same output, e.g. CoSENT's ranking plus cosine-MSE's
    absolute scale (AnglE combines objectives the same way). Batches are ungrouped if any part
    ranks within the batch."""

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        kinds = {bool(getattr(loss, "takes_logits", False)) for loss in self.losses.values()}
        if len(kinds) != 1:
            raise ValueError("WeightedSum: all parts must take the same input (all logits or all scores)")
        self.takes_logits = kinds.pop()
        self.ranks_within_batch = any(getattr(loss, "ranks_within_batch", False) for loss in self.losses.values())
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in self.losses}
        self.name = "+".join(type(loss).__name__ for loss in self.losses.values())

    def forward(self, output: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[name] * loss(output, gold) for name, loss in self.losses.items())
