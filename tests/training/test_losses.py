import pytest
import torch

from sts.training.losses import BCELoss, CoSENTLoss, CosineMSELoss, WeightedSum


def test_cosine_mse_is_zero_at_gold() -> None:
    gold = torch.tensor([0.1, 0.9])
    assert CosineMSELoss()(gold.clone(), gold) == 0
    assert CosineMSELoss()(torch.tensor([0.9, 0.1]), gold) > 0


def test_cosent_prefers_correct_ranking() -> None:
    gold = torch.tensor([0.0, 0.5, 1.0])
    right = CoSENTLoss()(torch.tensor([0.1, 0.5, 0.9]), gold)
    wrong = CoSENTLoss()(torch.tensor([0.9, 0.5, 0.1]), gold)
    assert right < wrong
    # only the ranking matters, not the absolute values
    assert torch.isclose(right, CoSENTLoss()(torch.tensor([0.2, 0.6, 1.0]), gold), atol=1e-6)


def test_cosent_without_ordered_pairs_is_log_one() -> None:
    assert CoSENTLoss()(torch.tensor([0.3, 0.7]), torch.tensor([0.5, 0.5])) == 0


def test_bce_takes_logits() -> None:
    assert BCELoss.takes_logits and not CosineMSELoss.takes_logits
    assert BCELoss()(torch.tensor([10.0]), torch.tensor([1.0])) < 1e-3


def test_weighted_sum_adds_its_parts_with_weights() -> None:
    score, gold = torch.tensor([0.2, 0.9, 0.4]), torch.tensor([0.0, 1.0, 0.8])
    combined = WeightedSum({"cosent": CoSENTLoss(), "cosine": CosineMSELoss()}, {"cosent": 0.05})
    expected = 0.05 * CoSENTLoss()(score, gold) + CosineMSELoss()(score, gold)
    assert torch.isclose(combined(score, gold), expected)
    assert combined.ranks_within_batch and not combined.takes_logits  # CoSENT's batches stay ungrouped
    assert combined.name == "CoSENTLoss+CosineMSELoss"


def test_weighted_sum_refuses_mixing_logits_and_scores() -> None:
    with pytest.raises(ValueError, match="same input"):
        WeightedSum({"bce": BCELoss(), "cosine": CosineMSELoss()})


def test_cosent_on_logits_ranks_raw_logits() -> None:
    gold = torch.tensor([0.0, 0.5, 1.0])
    loss = CoSENTLoss(scale=1.0, on_logits=True)
    assert loss.takes_logits and not CoSENTLoss().takes_logits
    assert loss(torch.tensor([-3.0, 0.0, 3.0]), gold) < loss(torch.tensor([3.0, 0.0, -3.0]), gold)
    # with BCE it forms a logit-taking sum, and its ranking keeps the batches ungrouped
    combined = WeightedSum({"bce": BCELoss(), "cosent": loss})
    assert combined.takes_logits and combined.ranks_within_batch
