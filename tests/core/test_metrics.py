import pytest
import torch

from sts.core.metrics import choose_threshold, pair_metrics, parse_objective


def test_threshold_separates_perfectly_separable_scores() -> None:
    scores = torch.tensor([0.1, 0.2, 0.35, 0.6, 0.7, 0.9])
    positive = torch.tensor([0, 0, 0, 1, 1, 1]).bool()
    t = choose_threshold(scores, positive)
    assert 0.35 < t < 0.6
    assert pair_metrics(scores, positive.float(), 0.5, t)["f1"] == 1.0


def test_threshold_maximises_f1() -> None:
    torch.manual_seed(0)
    scores = torch.rand(200)
    positive = (scores + 0.3 * torch.randn(200)) > 0.6
    t = choose_threshold(scores, positive)
    best = pair_metrics(scores, positive.float(), 0.5, t)["f1"]
    for other in torch.linspace(0, 1, 101):
        assert pair_metrics(scores, positive.float(), 0.5, float(other))["f1"] <= best + 1e-9


def test_pair_metrics_correlations_and_binarisation() -> None:
    gold = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0])
    m = pair_metrics(gold * 0.5, gold, positive_threshold=0.8, threshold=0.4)
    assert m["spearman"] == pytest.approx(1.0) and m["pearson"] == pytest.approx(1.0)
    assert m["accuracy"] == 1.0 and m["auroc"] == 1.0
    assert m["average_precision"] == pytest.approx(1.0) and m["mcc"] == pytest.approx(1.0)


@pytest.fixture
def noisy() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    scores = torch.rand(300)
    return scores, (scores + 0.3 * torch.randn(300)) > 0.6


def test_accuracy_objective_maximises_accuracy(noisy) -> None:
    scores, positive = noisy
    t = choose_threshold(scores, positive, "accuracy")
    best = pair_metrics(scores, positive.float(), 0.5, t)["accuracy"]
    assert all(pair_metrics(scores, positive.float(), 0.5, float(o))["accuracy"] <= best + 1e-9 for o in torch.linspace(0, 1, 201))
    assert t != choose_threshold(scores, positive, "f1")


@pytest.mark.parametrize("target", [0.6, 0.7, 0.8])
def test_precision_objective_is_the_lowest_threshold_reaching_the_target(noisy, target: float) -> None:
    scores, positive = noisy
    t = choose_threshold(scores, positive, f"precision@{target}")
    m = pair_metrics(scores, positive.float(), 0.5, t)
    assert m["precision"] >= target
    lower = [float(s) for s in scores if float(s) < t]  # any lower cut misses the target
    assert all(pair_metrics(scores, positive.float(), 0.5, c)["precision"] < target for c in lower)
    assert choose_threshold(scores, positive, f"precision={target}") == t


def test_unreachable_precision_gives_the_most_precise_cut() -> None:
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    positive = torch.tensor([0, 1, 1, 0]).bool()
    t = choose_threshold(scores, positive, "precision@1.0")
    assert pair_metrics(scores, positive.float(), 0.5, t)["precision"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("bad", ["f2", "precision", "precision@0", "precision@1.5", "precision@x", "recall@0.9"])
def test_bad_objectives_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="f1, accuracy, precision@<target>"):
        parse_objective(bad)


def test_mcc_of_a_known_confusion() -> None:
    scores = torch.tensor([0.9, 0.8, 0.2, 0.1, 0.7, 0.3])
    gold = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])  # tp 2, fp 1, fn 1, tn 2
    assert pair_metrics(scores, gold, 0.5, 0.5)["mcc"] == pytest.approx((2 * 2 - 1 * 1) / 9)
