"""Scores read as probabilities: a monotone map, fitted on dev, from a model's score to the chance
that gold calls the pair similar (gold >= the data's positive threshold, as metrics binarise it).

A cross-encoder's score is sigmoid(logit), so Platt scaling on the logit (sigmoid(a * logit + b):
temperature and bias) is the natural fit; a cosine has no such scale, and isotonic regression
(breakpoints, linear in between) or Platt on the cosine fits it. The fitted map is plain numbers
(`Calibration.record`), stored in the model file and checked like every field; applying it needs
torch or numpy only. Plus the two figures that say how well scores match outcomes: expected
calibration error (ECE) and the Brier score."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sts.core import checks
from sts.errors import STSError

METHODS = ("platt", "isotonic")
# what the map reads: the score's logit (a sigmoid output) or the score itself (a cosine)
INPUTS = ("logit", "score")
# ECE's binning: equal-width bins of the predicted probability over [0, 1] (Guo et al., 2017)
ECE_BINS = 15
MAX_BREAKPOINTS = 4096
_EPS = 1e-7
# the one line for calibrated=true on a model without a calibration (scoring and describing alike)
MISSING = "calibrated=true: this model has no calibration; fit one on dev with `python -m sts.commands.calibrate ckpt=MODEL out=NEW.pt`"


@dataclass(frozen=True)
class Calibration:
    """P(similar | score). `method` platt: sigmoid(a * z + b), a > 0; isotonic: linear between
    the breakpoints (x, y), flat outside them. z is the score or its logit (`input`). `fitted_on`
    says on what (data, split, pairs), for a model's record."""

    method: str
    input: str
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = field(default_factory=tuple)
    y: tuple[float, ...] = field(default_factory=tuple)
    fitted_on: str = ""

    def features(self, scores: torch.Tensor) -> torch.Tensor:
        s = scores.double()
        return torch.logit(s.clamp(_EPS, 1 - _EPS)) if self.input == "logit" else s

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        """Probabilities (float64) of the scores (a model's unclipped output)."""
        z = self.features(torch.as_tensor(scores))
        if self.method == "platt":
            return torch.sigmoid(self.a * z + self.b)
        return torch.from_numpy(np.interp(z.cpu().numpy(), self.x, self.y))

    def apply(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """Probabilities as float32, ordered about the decision threshold as the scores are: a
        score below `threshold` stays below `self.at(threshold)` and one at or above it reaches it
        (a flat stretch or float rounding would otherwise tie them), so labels do not change."""
        cut = self.at(threshold)
        p = self(torch.from_numpy(np.asarray(scores))).numpy().astype(np.float32)
        above = np.asarray(scores) >= threshold
        below_cut = np.nextafter(np.float32(cut), np.float32(-np.inf))
        return np.where(above, np.maximum(p, np.float32(cut)), np.minimum(p, below_cut)).astype(np.float32)

    def at(self, threshold: float) -> float:
        """The decision threshold on the probability scale (float32, as scores are)."""
        return float(np.float32(self(torch.tensor([float(threshold)]))[0]))

    def inverse(self, probability: float) -> float:
        """The lowest score whose probability reaches `probability` (-inf: every score does;
        inf: none does), for a search that filters raw scores (mining) at a probability."""
        if self.method == "platt":
            z = (float(torch.logit(torch.tensor(min(max(probability, _EPS), 1 - _EPS), dtype=torch.float64))) - self.b) / self.a
        elif probability <= self.y[0]:
            return -float("inf")
        elif probability > self.y[-1]:
            return float("inf")
        else:
            k = int(np.argmax(np.asarray(self.y) >= probability))
            x0, x1, y0, y1 = self.x[k - 1], self.x[k], self.y[k - 1], self.y[k]
            z = x0 + (probability - y0) * (x1 - x0) / (y1 - y0)
        return float(torch.sigmoid(torch.tensor(z, dtype=torch.float64))) if self.input == "logit" else z

    @property
    def record(self) -> dict[str, Any]:
        """Plain data for a model file's payload (`from_record` reads it back)."""
        numbers = {"a": self.a, "b": self.b} if self.method == "platt" else {"x": list(self.x), "y": list(self.y)}
        return {"method": self.method, "input": self.input, **numbers, "fitted_on": self.fitted_on}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Calibration:
        """A checked record (sts.core.checks.calibration) as a Calibration."""
        return cls(record["method"], record["input"], float(record.get("a", 1.0)), float(record.get("b", 0.0)),
                   tuple(record.get("x", ())), tuple(record.get("y", ())), str(record.get("fitted_on", "")))

    def describe(self) -> str:
        """One line for a model card and `info`."""
        on = f" on {self.fitted_on}" if self.fitted_on else ""
        if self.method == "platt":
            return f"Platt scaling of the {self.input}: sigmoid({self.a:.4g} * {self.input} {'-' if self.b < 0 else '+'} {abs(self.b):.4g}){on}"
        return f"isotonic regression of the {self.input} ({len(self.x)} breakpoints){on}"


def rule() -> checks.Rule:
    """A model's probability calibration (`Calibration.record`): method and input by name,
    Platt's slope positive and both numbers finite, or isotonic breakpoints with x strictly
    increasing and y non-decreasing in [0, 1], so the map is monotone wherever it came from."""

    def key(value: dict[str, Any], name: str, check: checks.Rule) -> Any:
        try:
            return check(value.get(name))
        except checks.Invalid as e:
            raise checks.Invalid(f"has {name}={checks.shown(value.get(name), 40)}, which {e}") from None

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise checks.Invalid("must be a mapping (method, input, and a, b or x, y)")
        method = key(value, "method", checks.choice(*METHODS))
        numbers = ("a", "b") if method == "platt" else ("x", "y")
        unknown = set(value) - {"method", "input", "fitted_on", *numbers}
        if unknown:
            raise checks.Invalid(f"has unknown key(s) {sorted(map(str, unknown))} for method {method}")
        out = {"method": method, "input": key(value, "input", checks.choice(*INPUTS)), "fitted_on": key({"fitted_on": value.get("fitted_on") or None}, "fitted_on", checks.optional(checks.text(400))) or ""}
        if method == "platt":
            return out | {"a": key(value, "a", checks.number(0, 1e6, lo_open=True)), "b": key(value, "b", checks.number(-1e6, 1e6))}
        x, y = value.get("x"), value.get("y")
        if not isinstance(x, list) or not isinstance(y, list) or not 2 <= len(x) == len(y) <= MAX_BREAKPOINTS:
            raise checks.Invalid(f"has isotonic x and y that are not lists of equal length, 2 to {MAX_BREAKPOINTS} numbers")
        out["x"], out["y"] = [checks.number(-1e6, 1e6)(v) for v in x], [checks.number(0, 1)(v) for v in y]
        if any(b <= a for a, b in zip(out["x"], out["x"][1:])) or any(b < a for a, b in zip(out["y"], out["y"][1:])):
            raise checks.Invalid("has isotonic breakpoints that are not monotone (x must be strictly increasing, y non-decreasing)")
        return out

    return check


def stored(value: Any, where: str) -> Calibration | None:
    """A calibration as a file stores it (None: the model has none), checked like every field
    (sts.core.checks.calibration); one line naming `where` when refused."""
    if value is None:
        return None
    try:
        return Calibration.from_record(rule()(value))
    except checks.Invalid as e:
        raise STSError(f"{where} {e}") from None


def fit(scores: torch.Tensor, positive: torch.Tensor, method: str, input: str, fitted_on: str = "") -> Calibration:
    """The calibration of `scores` (unclipped) against the 0/1 outcomes `positive`."""
    if method not in METHODS or input not in INPUTS:
        raise ValueError(f"method must be one of {METHODS} and input one of {INPUTS}")
    base = Calibration(method, input, fitted_on=fitted_on)
    z, target = base.features(torch.as_tensor(scores).flatten()), torch.as_tensor(positive).flatten().double()
    if method == "platt":
        a, b = _platt(z, target)
        return Calibration(method, input, a, b, fitted_on=fitted_on)
    x, y = _isotonic(z.numpy(), target.numpy())
    return Calibration(method, input, x=tuple(map(float, x)), y=tuple(map(float, y)), fitted_on=fitted_on)  # plain floats: a model file holds them


# the maps fit_model weighs: Platt scaling of the score's logit (a temperature and bias for a
# sigmoid output) or of the score itself, and isotonic regression of the score
CANDIDATES = (("platt", "logit"), ("platt", "score"), ("isotonic", "score"))
FOLDS = 5


def fit_model(scores: torch.Tensor, positive: torch.Tensor, fitted_on: str) -> Calibration:
    """The calibration training and `sts.commands.calibrate` fit on dev: of CANDIDATES, the one
    whose probabilities for held-out dev pairs (5-fold cross-fitting within dev, folds drawn with a
    fixed seed) have the lowest ECE, refitted on all of dev. On STS-B the choice differed by model
    (experiments/calibration.py): Platt on the logit for our cross-encoder, Platt on the cosine
    for the bundled MiniLM, isotonic for a fine-tuned bi-encoder; `fitted_on` records it."""
    scores, positive = torch.as_tensor(scores).double().flatten(), torch.as_tensor(positive).flatten()
    held_out = {candidate: ece(cross_fitted(scores, positive, *candidate), positive) for candidate in CANDIDATES}
    method, input_ = min(CANDIDATES, key=lambda c: held_out[c])
    weighed = ", ".join(f"{m} on the {i} {held_out[(m, i)]:.4f}" for m, i in CANDIDATES)
    return fit(scores, positive, method, input_, f"{fitted_on}; chosen by {FOLDS}-fold cross-fitted dev ECE ({weighed})")


def cross_fitted(scores: torch.Tensor, positive: torch.Tensor, method: str, input: str) -> torch.Tensor:
    """Each pair's probability from the map fitted on the other folds (FOLDS folds, drawn with a
    fixed seed): how the map does on pairs it was not fitted on, measured within dev."""
    scores, positive = torch.as_tensor(scores).double().flatten(), torch.as_tensor(positive).flatten()
    folds = torch.from_numpy(np.random.default_rng(0).permutation(len(scores)) % FOLDS)
    p = torch.zeros(len(scores), dtype=torch.float64)
    for k in range(FOLDS):
        train, test = folds != k, folds == k
        if 0 < int(positive[train].sum()) < int(train.sum()):
            p[test] = fit(scores[train], positive[train], method, input)(scores[test])
        else:  # a fold with one outcome: the base rate of the rest
            p[test] = positive[train].double().mean()
    return p


def _platt(z: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Logistic regression of the outcome on z by Newton's method (no autograd, so it runs inside
    a validation loop's inference mode), with Platt's smoothed targets so that separable data
    keeps a finite slope; the slope stays positive (monotone)."""
    n_pos, n_neg = float(target.sum()), float(len(target) - target.sum())
    smoothed = torch.where(target > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)).double()
    scale = float(z.std()) or 1.0
    features = torch.stack([z.double() / scale, torch.ones_like(z, dtype=torch.float64)], 1)
    weights = torch.zeros(2, dtype=torch.float64)

    def loss(w: torch.Tensor) -> float:
        return float(torch.nn.functional.binary_cross_entropy_with_logits(features @ w, smoothed))

    current = loss(weights)
    for _ in range(100):
        p = torch.sigmoid(features @ weights)
        gradient = features.T @ (p - smoothed)
        hessian = features.T @ (features * (p * (1 - p)).unsqueeze(1)) + 1e-9 * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(hessian, gradient)
        while loss(weights - step) > current and float(step.abs().max()) > 1e-12:  # halve an overshooting step
            step = step / 2
        weights, previous, current = weights - step, current, loss(weights - step)
        if previous - current < 1e-12:
            break
    a, b = float(weights[0]) / scale, float(weights[1])
    if not a > 0:  # scores that do not rank outcomes at all: the base rate, barely increasing
        a, b = 1e-6, float(torch.logit(torch.tensor(min(max(n_pos / len(target), _EPS), 1 - _EPS), dtype=torch.float64)))
    return a, b


def _isotonic(z: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing fit of the outcome on z (equal z pooled
    first), as breakpoints: each pooled block's lowest and highest z at the block's mean, at most
    MAX_BREAKPOINTS; x strictly increasing, y non-decreasing."""
    keys, inverse = np.unique(z, return_inverse=True)
    weights = np.bincount(inverse).astype(float)
    means = np.bincount(inverse, weights=target) / weights
    values: list[float] = []
    sizes: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    for key, mean, weight in zip(keys, means, weights):
        values.append(float(mean)), sizes.append(float(weight)), lo.append(float(key)), hi.append(float(key))
        while len(values) > 1 and values[-2] >= values[-1]:
            total = sizes[-2] + sizes[-1]
            values[-2] = (values[-2] * sizes[-2] + values[-1] * sizes[-1]) / total
            sizes[-2], hi[-2] = total, hi[-1]
            del values[-1], sizes[-1], lo[-1], hi[-1]
    x = np.array([k for pair in zip(lo, hi) for k in pair])
    y = np.repeat(values, 2)
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    x, y = x[keep], y[keep]
    if len(x) > MAX_BREAKPOINTS:
        pick = np.unique(np.linspace(0, len(x) - 1, MAX_BREAKPOINTS).round().astype(int))
        x, y = x[pick], y[pick]
    return x, y


def figures(scores: torch.Tensor, positive: torch.Tensor, calibration: Calibration | None = None) -> dict[str, float]:
    """ECE and Brier score of the raw score read as a probability (`ece_raw`, `brier_raw`) and,
    given a calibration, of its probabilities (`ece`, `brier`): what metrics records carry."""
    raw = probabilities(scores)
    out = {"ece_raw": ece(raw, positive), "brier_raw": brier(raw, positive)}
    if calibration is not None:
        p = calibration(torch.as_tensor(scores))
        out |= {"ece": ece(p, positive), "brier": brier(p, positive)}
    return out


def probabilities(scores: torch.Tensor) -> torch.Tensor:
    """A raw score read as a probability, as a user would read it: clipped to 0-1."""
    return torch.as_tensor(scores).double().clamp(0, 1)


def ece(probability: torch.Tensor, positive: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error: over ECE_BINS equal-width bins of the probability, the mean
    |share of positives - mean probability|, weighted by the bin's share of pairs."""
    p, y = torch.as_tensor(probability).double().flatten(), torch.as_tensor(positive).double().flatten()
    index = (p * bins).long().clamp(0, bins - 1)
    gap = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, p - y).abs()
    return float(gap.sum() / max(len(p), 1))


def brier(probability: torch.Tensor, positive: torch.Tensor) -> float:
    """Mean squared difference between probability and the 0/1 outcome."""
    p, y = torch.as_tensor(probability).double().flatten(), torch.as_tensor(positive).double().flatten()
    return float(((p - y) ** 2).mean())


def reliability(probability: torch.Tensor, positive: torch.Tensor, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per non-empty bin: mean probability, share of positives and pairs (a reliability diagram's points)."""
    p, y = torch.as_tensor(probability).double().flatten(), torch.as_tensor(positive).double().flatten()
    index = (p * bins).long().clamp(0, bins - 1)
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, torch.ones_like(p))
    mean_p = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, p)
    mean_y = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, y)
    used = count > 0
    return {"probability": (mean_p[used] / count[used]).tolist(), "positive": (mean_y[used] / count[used]).tolist(), "n": count[used].tolist()}
