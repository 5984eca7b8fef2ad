"""Correlation and decision-threshold metrics on scores vs gold (all in 0-1), in plain torch (float64):
evaluation and scoring need no metrics library; tests/core/test_metrics.py checks each against
torchmetrics and scikit-learn."""
from __future__ import annotations

import torch


OBJECTIVES = ("f1", "accuracy", "precision@<target>")


def parse_objective(value: str) -> tuple[str, float | None]:
    """"f1" | "accuracy" | "precision@0.9" (also "precision=0.9") -> (name, target)."""
    if value in ("f1", "accuracy"):
        return value, None
    name, sep, target = value.replace("=", "@").partition("@") if isinstance(value, str) else ("", "", "")
    try:
        number = float(target)
    except ValueError:
        number = float("nan")
    if name != "precision" or not sep or not 0.0 < number <= 1.0:
        raise ValueError(f"must be one of {', '.join(OBJECTIVES)} (a target precision in (0, 1], e.g. precision@0.9)")
    return name, number


def choose_threshold(scores: torch.Tensor, positive: torch.Tensor, objective: str = "f1") -> float:
    """The score cut-off (`score >= threshold` predicts similar) that best meets `objective`:
    maximal F1, maximal accuracy, or the lowest threshold whose precision reaches the target
    (the most recall at that precision; the most precise cut when none reaches it).

    Every distinct score is a candidate; the returned cut sits midway to the next lower score
    so that it generalises rather than touching one example.
    """
    name, target = parse_objective(objective)
    if positive.sum() == 0 or positive.all():
        return 0.5
    order = torch.argsort(scores, descending=True)
    s, p = scores[order].double(), positive[order].double()
    tp = torch.cumsum(p, 0)
    predicted = torch.arange(1, len(s) + 1, dtype=torch.float64)
    if name == "f1":
        value = 2 * tp / (predicted + p.sum())
    elif name == "accuracy":
        value = (tp + (len(s) - p.sum()) - (predicted - tp)) / len(s)
    else:
        precision = tp / predicted
        reaching = precision >= target - 1e-12
        value = torch.where(reaching, predicted, precision - 2)  # reached: most predicted; else: most precise
    last_of_run = torch.ones_like(s, dtype=torch.bool)
    last_of_run[:-1] = s[:-1] != s[1:]  # only cut between distinct scores
    value = torch.where(last_of_run, value, torch.full_like(value, -float("inf")))
    k = int(torch.argmax(value))
    below = s[k + 1] if k + 1 < len(s) else s[k] - 1e-6
    return float((s[k] + below) / 2)


def ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks, tied values sharing their average rank (as Spearman and AUROC need)."""
    x = values.double().flatten()
    n = len(x)
    order = torch.argsort(x, stable=True)
    starts = torch.ones(n, dtype=torch.bool)
    starts[1:] = x[order][1:] != x[order][:-1]
    group = torch.cumsum(starts, 0) - 1
    groups = int(group[-1]) + 1 if n else 0
    total = torch.zeros(groups, dtype=torch.float64).index_add_(0, group, torch.arange(1, n + 1, dtype=torch.float64))
    count = torch.zeros(groups, dtype=torch.float64).index_add_(0, group, torch.ones(n, dtype=torch.float64))
    out = torch.empty(n, dtype=torch.float64)
    out[order] = (total / count)[group]
    return out


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation; NaN when either side is constant."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    denominator = torch.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman correlation: Pearson of the (tie-averaged) ranks."""
    return pearson(ranks(a), ranks(b))


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative
    (ties count half), from the Mann-Whitney rank sum."""
    positive = positive.bool().flatten()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    rank_sum = float(ranks(scores)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Precision averaged over recall steps, one step per distinct score (as scikit-learn)."""
    order = torch.argsort(scores.double().flatten(), descending=True, stable=True)
    s, p = scores.double().flatten()[order], positive.double().flatten()[order]
    last = torch.ones(len(s), dtype=torch.bool)
    last[:-1] = s[:-1] != s[1:]
    tp = torch.cumsum(p, 0)[last]
    predicted = torch.arange(1, len(s) + 1, dtype=torch.float64)[last]
    recall = tp / p.sum()
    steps = recall - torch.cat([recall.new_zeros(1), recall[:-1]])
    return float((steps * tp / predicted).sum())


def pair_metrics(scores: torch.Tensor, gold: torch.Tensor, positive_threshold: float, threshold: float) -> dict[str, float]:
    """Pearson/Spearman against gold, and accuracy/precision/recall/F1/AUC of `score >= threshold`
    against gold binarised at `positive_threshold`."""
    scores, gold = scores.float().flatten(), gold.float().flatten()
    positive = gold >= positive_threshold
    predicted = scores >= threshold
    tp = (predicted & positive).sum().item()
    fp, fn = (predicted & ~positive).sum().item(), (~predicted & positive).sum().item()
    tn = len(scores) - tp - fp - fn
    both_classes = 0 < positive.sum() < len(positive)
    precision = tp / max(predicted.sum().item(), 1)
    recall = tp / max(positive.sum().item(), 1)
    out = {
        "pearson": pearson(scores, gold) if len(scores) > 1 else float("nan"),
        "spearman": spearman(scores, gold) if len(scores) > 1 else float("nan"),
        "accuracy": (predicted == positive).float().mean().item(),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "auroc": auroc(scores, positive) if both_classes else float("nan"),
        # threshold-free ranking quality of "similar", and a balanced single figure at the threshold
        "average_precision": average_precision(scores, positive) if both_classes else float("nan"),
        "mcc": _mcc(tp, fp, fn, tn),
        "threshold": threshold,
    }
    return out


def _mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    """Matthews correlation of the 0/1 labels with gold (0 when a row or column is empty)."""
    denominator = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    return (tp * tn - fp * fn) / denominator if denominator else 0.0
