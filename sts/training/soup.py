"""Model soups: one model whose weights are a weighted average of several fine-tuned models of the
same architecture and starting point (Wortsman et al. 2022, "Model soups"; Wortsman et al. 2022,
WiSE-FT). Models fine-tuned from one checkpoint stay in one basin, so averaging their weights can
combine what different objectives taught them (e.g. cosine-MSE's calibration and CoSENT's
ranking) at the inference cost of one model.

The mixing weights are chosen on dev, greedily: start from the ingredient with the best dev score,
then for each next ingredient (best dev first) try mixing it in at every grid weight and keep the
best, if it beats the soup so far (ties keep the simpler soup).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from sts.io import checkpoint
from sts.errors import STSError
from sts.core import PairModel
from sts.core.cross_encoder import set_both_orders

State = dict[str, torch.Tensor]


@dataclass
class SoupResult:
    """The chosen weights (one per ingredient, summing to 1), their dev score and every trial."""

    weights: list[float]
    dev_score: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def mix(states: Sequence[State], weights: Sequence[float]) -> State:
    """Weighted sum of floating-point tensors; integer buffers (e.g. position ids) from the first."""
    if len(states) != len(weights):
        raise ValueError("one weight per state")
    out = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            out[name] = sum((w * s[name] for w, s in zip(weights, states) if w), torch.zeros_like(first))
        else:
            out[name] = first
    return out


def grid(step: float) -> list[float]:
    """Mixing weights 0, step, ..., 1 for one ingredient joining the soup."""
    if not 0.0 < step <= 1.0:
        raise STSError(f"soup.grid_step must be in (0, 1], got {step}")
    n = round(1.0 / step)
    if abs(n * step - 1.0) > 1e-9:
        raise STSError(f"soup.grid_step={step} must divide 1 (e.g. 0.05, 0.1, 0.25)")
    return [i / n for i in range(n + 1)]


def greedy(states: Sequence[State], dev_score: Callable[[State], float], step: float) -> SoupResult:
    """Greedy soup over `states` with mixing weights on a grid, every choice made by `dev_score`."""
    trials: list[dict[str, Any]] = []

    def score(weights: list[float]) -> float:
        value = dev_score(mix(states, weights))
        trials.append({"weights": [round(w, 6) for w in weights], "dev": value})
        return value

    alone = []
    for i in range(len(states)):
        weights = [float(i == j) for j in range(len(states))]
        alone.append((score(weights), i))
    alone.sort(key=lambda pair: -pair[0])
    best, first = alone[0]
    chosen = [float(first == j) for j in range(len(states))]
    for _, i in alone[1:]:
        base = chosen
        for alpha in grid(step)[1:-1]:  # 0 is the soup so far and 1 the ingredient alone: both scored
            weights = [(1 - alpha) * w for w in base]
            weights[i] += alpha
            value = score(weights)
            if value > best:
                best, chosen = value, weights
    return SoupResult(weights=chosen, dev_score=best, trials=trials)


def load_ingredients(paths: Sequence[str | Path]) -> tuple[PairModel, list[State], float]:
    """The first ingredient as a ready module (it fixes the soup's architecture, tokenizer and
    settings), every ingredient's weights checked against it, and their summed training time."""
    if len(paths) < 2:
        raise STSError(f"soup.ingredients: a soup needs at least two model files, got {len(paths)}")
    model = checkpoint.load(paths[0])
    states = [{k: v.detach().clone() for k, v in model.state_dict().items()}]  # scoring overwrites the module's own
    seconds = float(model.checkpoint_metrics.get("train_seconds", 0.0))
    for path in paths[1:]:
        payload = checkpoint.read(path, type(model).__name__)
        checkpoint.check_weights(path, model, payload["state_dict"])
        states.append(payload["state_dict"])
        seconds += float(payload["sts"].get("metrics", {}).get("train_seconds", 0.0))
    return model, states, seconds


def cook(model: PairModel, states: Sequence[State], dev_score: Callable[[], float], grid_step: float) -> SoupResult:
    """Choose the soup on dev and leave its weights in `model`; `dev_score` scores the weights
    currently in `model`."""

    def score(state: State) -> float:
        model.load_state_dict(state)
        return dev_score()

    result = greedy(states, score, grid_step)
    model.load_state_dict(mix(states, result.weights))
    return result


def cook_soup(cfg: DictConfig, ingredients: Sequence[str | Path], earlier: dict[str, Any] | None = None) -> dict[str, float]:
    """A recipe's soup step: the model files `ingredients` mixed with weights chosen on cfg's dev
    data, scored as cfg.model says (both orders or not), thresholded, tested and saved like a
    trained model. `earlier` is what the recipe's stages recorded (sts/training/recipe.py)."""
    from sts.training.fit import build_task, dev_spearman, finish, prepare, start_trainer

    _, datamodule = prepare(cfg)
    model, states, ingredient_seconds = load_ingredients(ingredients)
    set_both_orders(model, cfg.model.get("both_orders"))
    task = build_task(cfg, model)
    trainer = start_trainer(cfg, task, datamodule)
    started = time.perf_counter()
    result = cook(model, states, lambda: dev_spearman(trainer, task, datamodule), cfg.soup.grid_step)
    weights = [round(w, 6) for w in result.weights]
    found = [json.loads(r.read_text()) for r in (Path(f).parent / "metrics.json" for f in ingredients) if r.is_file()]
    record = {
        "loss": "soup(" + "+".join(str(r.get("loss")) for r in found) + ")" if found else "soup",
        "epochs": max((r.get("epochs", 0) for r in found), default=0),
        "soup": {"ingredients": [str(f) for f in ingredients], "weights": weights, "dev_spearman": result.dev_score, "trials": result.trials},
    }
    if found and "encoder" in found[0]:
        record["encoder"] = found[0]["encoder"]
    record |= earlier or {}
    seconds = time.perf_counter() - started + ingredient_seconds
    return finish(cfg, task, trainer, datamodule, seconds, {"soup": [str(f) for f in ingredients], "weights": weights}, record)
