import pytest
import torch

from sts.metrics import best_f1_threshold, pair_metrics


def test_threshold_separates_perfectly_separable_scores() -> None:
    scores = torch.tensor([0.1, 0.2, 0.35, 0.6, 0.7, 0.9])
    positive = torch.tensor([0, 0, 0, 1, 1, 1]).bool()
    t = best_f1_threshold(scores, positive)
    assert 0.35 < t < 0.6
    assert pair_metrics(scores, positive.float(), 0.5, t)["f1"] == 1.0


def test_threshold_maximises_f1() -> None:
    torch.manual_seed(0)
    scores = torch.rand(200)
    positive = (scores + 0.3 * torch.randn(200)) > 0.6
    t = best_f1_threshold(scores, positive)
    best = pair_metrics(scores, positive.float(), 0.5, t)["f1"]
    for other in torch.linspace(0, 1, 101):
        assert pair_metrics(scores, positive.float(), 0.5, float(other))["f1"] <= best + 1e-9


def test_pair_metrics_correlations_and_binarisation() -> None:
    gold = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0])
    m = pair_metrics(gold * 0.5, gold, positive_threshold=0.8, threshold=0.4)
    assert m["spearman"] == pytest.approx(1.0) and m["pearson"] == pytest.approx(1.0)
    assert m["accuracy"] == 1.0 and m["auroc"] == 1.0
