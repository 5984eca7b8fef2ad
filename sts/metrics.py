"""Correlation and decision-threshold metrics on scores vs gold (all in 0-1)."""
from __future__ import annotations

import torch
from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef
from torchmetrics.functional.classification import binary_auroc, binary_average_precision


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
        "pearson": pearson_corrcoef(scores, gold).item() if len(scores) > 1 else float("nan"),
        "spearman": spearman_corrcoef(scores, gold).item() if len(scores) > 1 else float("nan"),
        "accuracy": (predicted == positive).float().mean().item(),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "auroc": binary_auroc(scores, positive.long()).item() if both_classes else float("nan"),
        # threshold-free ranking quality of "similar", and a balanced single figure at the threshold
        "average_precision": binary_average_precision(scores, positive.long()).item() if both_classes else float("nan"),
        "mcc": _mcc(tp, fp, fn, tn),
        "threshold": threshold,
    }
    return out


def _mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    """Matthews correlation of the 0/1 labels with gold (0 when a row or column is empty)."""
    denominator = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    return (tp * tn - fp * fn) / denominator if denominator else 0.0
