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
    """

    takes_logits = False
    ranks_within_batch = True

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.scale = scale

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
