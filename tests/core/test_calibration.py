"""Probability calibration: the fitted maps (against scikit-learn where it has one), ECE and Brier,
labels kept where the map ties scores about the threshold, and the stored record checked."""
import numpy as np
import pytest
import torch

from sts.core import checks
from sts.core.calibration import Calibration, brier, cross_fitted, ece, figures, fit, fit_model, reliability, rule, stored
from sts.errors import STSError


def synthetic(n: int = 4000, a: float = 6.0, b: float = -4.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines in -0.2..1 whose outcome is drawn with P = sigmoid(a * cosine + b)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, generator=g, dtype=torch.float64) * 1.2 - 0.2
    positive = torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(a * scores + b)
    return scores, positive


def test_platt_recovers_the_map_that_drew_the_outcomes() -> None:
    scores, positive = synthetic()
    fitted = fit(scores, positive, "platt", "score")
    assert fitted.a == pytest.approx(6.0, rel=0.15) and fitted.b == pytest.approx(-4.0, rel=0.15)
    assert ece(fitted(scores), positive) < 0.03 < ece(scores.clamp(0, 1), positive)


def test_fit_model_chooses_by_cross_fitted_dev_ece() -> None:
    """Outcomes drawn by a logistic map of the logit: Platt on the logit (a temperature and bias)
    is chosen for a sigmoid score, Platt on the score for a cosine drawn that way."""
    logits, positive = synthetic()  # P = sigmoid(6 * logit - 4)
    fitted = fit_model(torch.sigmoid(2 * logits), positive, "dev")  # the model's scores: sigmoid(2 * logit), over-confident
    assert (fitted.method, fitted.input) == ("platt", "logit") and fitted.a == pytest.approx(3.0, rel=0.15) and fitted.b == pytest.approx(-4.0, rel=0.15)
    assert fitted.fitted_on.startswith("dev; chosen by 5-fold cross-fitted dev ECE (platt on the logit 0.0")
    cosine = fit_model(logits, positive, "dev")
    assert (cosine.method, cosine.input) == ("platt", "score")
    assert ece(cross_fitted(logits, positive, "platt", "score"), positive) < 0.03


def test_isotonic_matches_scikit_learn() -> None:
    from sklearn.isotonic import IsotonicRegression

    scores, positive = synthetic(n=600)
    scores = (scores * 20).round() / 20  # ties, which are pooled before fitting
    fitted = fit(scores, positive, "isotonic", "score")
    theirs = IsotonicRegression(out_of_bounds="clip").fit(scores.numpy(), positive.numpy().astype(float))
    grid = np.linspace(-0.3, 1.1, 301)
    np.testing.assert_allclose(fitted(torch.from_numpy(grid)).numpy(), theirs.predict(grid), atol=1e-9)
    assert np.all(np.diff(fitted.x) > 0) and np.all(np.diff(fitted.y) >= 0)
    assert all(type(v) is float for v in fitted.record["x"] + fitted.record["y"])  # a model file loads with weights_only=True


def test_ece_and_brier_by_hand() -> None:
    p = torch.tensor([0.1, 0.1, 0.9, 0.9])
    y = torch.tensor([0, 1, 1, 1])
    # bins: {0.1, 0.1} -> 1/2 similar vs 0.1: gap 0.4; {0.9, 0.9} -> all similar vs 0.9: gap 0.1
    assert ece(p, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert brier(p, y) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    assert reliability(p, y) == {"probability": pytest.approx([0.1, 0.9]), "positive": [0.5, 1.0], "n": [2.0, 2.0]}
    assert figures(torch.tensor([-0.5, 1.0]), torch.tensor([0, 1])) == {"ece_raw": 0.0, "brier_raw": 0.0}


def test_labels_do_not_change_where_the_map_is_flat_about_the_threshold() -> None:
    flat = Calibration("isotonic", "score", x=(0.0, 0.4, 0.9, 1.0), y=(0.0, 0.3, 0.3, 1.0))  # one probability for 0.4..0.9
    scores = np.array([0.5, 0.59999, 0.6, 0.7, -0.1, 1.0], dtype=np.float32)
    probabilities = flat.apply(scores, threshold=0.6)
    assert ((probabilities >= flat.at(0.6)) == (scores >= 0.6)).all()
    assert np.abs(probabilities - flat(torch.from_numpy(scores)).numpy()).max() < 1e-6
    platt = Calibration("platt", "logit", a=0.7, b=-1.0)
    sigmoid_scores = np.random.default_rng(0).random(1000).astype(np.float32)
    assert ((platt.apply(sigmoid_scores, 0.37) >= platt.at(0.37)) == (sigmoid_scores >= 0.37)).all()


@pytest.mark.parametrize("calibration", [Calibration("platt", "score", a=13.5, b=-11.7), Calibration("platt", "logit", a=0.8, b=-1.2),
                                         Calibration("isotonic", "score", x=(0.1, 0.5, 0.9), y=(0.05, 0.2, 0.95))])
def test_inverse_is_the_lowest_score_reaching_a_probability(calibration: Calibration) -> None:
    score = calibration.inverse(0.5)
    assert float(calibration(torch.tensor([score], dtype=torch.float64))[0]) == pytest.approx(0.5, abs=1e-9)
    assert calibration.record == rule()(calibration.record) and Calibration.from_record(calibration.record) == calibration


@pytest.mark.parametrize("record, message", [
    ({"method": "platt", "input": "score", "a": -2.0, "b": 0.0}, "has a=-2.0, which must be a number in (0, 1e+06]"),
    ({"method": "platt", "input": "score", "a": float("nan"), "b": 0.0}, "has a=nan"),
    ({"method": "platt", "input": "cosine", "a": 1.0, "b": 0.0}, "has input='cosine'"),
    ({"method": "platt", "input": "score", "a": 1.0, "b": 0.0, "code": "import os"}, "unknown key(s) ['code']"),
    ({"method": "isotonic", "input": "score", "x": [0.0, 0.5, 0.4], "y": [0.0, 0.1, 0.2]}, "not monotone"),
    ({"method": "isotonic", "input": "score", "x": [0.0, 0.5], "y": [0.5, 0.1]}, "not monotone"),
    ({"method": "isotonic", "input": "score", "x": [0.0] * 5000, "y": [0.0] * 5000}, "2 to 4096 numbers"),
    ("platt", "must be a mapping"),
])
def test_a_stored_calibration_is_checked(record: object, message: str) -> None:
    with pytest.raises(checks.Invalid, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        rule()(record)
    with pytest.raises(STSError, match="^model.pt: field calibration "):
        stored(record, "model.pt: field calibration")
