"""Correlation and decision-threshold metrics on scores vs gold (all in 0-1)."""
from __future__ import annotations

import torch
from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef
from torchmetrics.functional.classification import binary_auroc


def best_f1_threshold(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """The score cut-off maximising F1: `score >= threshold` predicts similar.

    Every distinct score is a candidate; the returned cut sits midway to the next lower score
    so that it generalises rather than touching one example.
    """
    if positive.sum() == 0 or positive.all():
        return 0.5
    order = torch.argsort(scores, descending=True)
    s, p = scores[order].double(), positive[order].double()
    tp = torch.cumsum(p, 0)
    predicted = torch.arange(1, len(s) + 1, dtype=torch.float64)
    f1 = 2 * tp / (predicted + p.sum())
    last_of_run = torch.ones_like(s, dtype=torch.bool)
    last_of_run[:-1] = s[:-1] != s[1:]  # only cut between distinct scores
    f1 = torch.where(last_of_run, f1, torch.zeros_like(f1))
    k = int(torch.argmax(f1))
    below = s[k + 1] if k + 1 < len(s) else s[k] - 1e-6
    return float((s[k] + below) / 2)


def pair_metrics(scores: torch.Tensor, gold: torch.Tensor, positive_threshold: float, threshold: float) -> dict[str, float]:
    """Pearson/Spearman against gold, and accuracy/precision/recall/F1/AUC of `score >= threshold`
    against gold binarised at `positive_threshold`."""
    scores, gold = scores.float().flatten(), gold.float().flatten()
    positive = gold >= positive_threshold
    predicted = scores >= threshold
    tp = (predicted & positive).sum().item()
    precision = tp / max(predicted.sum().item(), 1)
    recall = tp / max(positive.sum().item(), 1)
    out = {
        "pearson": pearson_corrcoef(scores, gold).item() if len(scores) > 1 else float("nan"),
        "spearman": spearman_corrcoef(scores, gold).item() if len(scores) > 1 else float("nan"),
        "accuracy": (predicted == positive).float().mean().item(),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "auroc": binary_auroc(scores, positive.long()).item() if 0 < positive.sum() < len(positive) else float("nan"),
        "threshold": threshold,
    }
    return out
