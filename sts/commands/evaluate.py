"""evaluate(cfg): measure a model file on one split of any configured data set, the way
training measures it (same readers, same dev carve-out, same metrics), and leave a record:
an aligned table, metrics.json, a predicted-vs-gold scatter and a PR or ROC curve."""
from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sts.api import Model, load
from sts.commands.cli import entry, run
from sts.config import options, scoring_settings
from sts.core.calibration import ECE_BINS, Calibration, ece, figures, probabilities, reliability
from sts.core.metrics import choose_threshold, pair_metrics
from sts.data.readers import SPLITS, Pairs, read_splits
from sts.data.tables import check_apart, marker_content
from sts.data.terminal import format_table
from sts.errors import STSError

METRICS = ("pearson", "spearman", "accuracy", "precision", "recall", "f1", "mcc", "auroc", "average_precision")
HEADERS = {"average_precision": "ap"}
CURVES = ("pr", "roc")
BINNING = f"ECE over {ECE_BINS} equal-width bins of the probability"


def read_split(data: DictConfig, split: str) -> tuple[Pairs, float]:
    """One split's pairs and the gold cut for "similar", read as training reads them, so a dev set
    carved from train (data.val_fraction) is the one training selected on. Other splits are not
    read (data=pairs has no train file to give)."""
    if split not in ("val", "test"):
        raise STSError(f"split={split!r}: choose val (dev) or test")
    paths = {s: None if OmegaConf.is_missing(data, s) else data[s] for s in SPLITS}
    carved = split == "val" and not paths["val"] and data.val_fraction > 0
    keep = {split, "train"} if carved else {split}
    pairs = read_splits({s: paths[s] if s in keep else None for s in SPLITS}, data.get("format", "table"), data.get("score_range"), data.get("columns"), data.get("val_fraction", 0.0), data.get("seed", 0))
    if split not in pairs:
        raise STSError(f"data={data.name}: no {split} split; set data.{split}=FILE")
    return pairs[split], 0.5 if pairs[split].binary else float(data.positive_threshold)


def metrics_by_group(scores: np.ndarray, pairs: Pairs, positive_threshold: float, threshold: float, calibration: Calibration | None = None) -> dict[str, dict[str, float]]:
    """Metrics for all pairs and, when the data carries genres (STS-B), for each genre: those of
    the threshold, and ECE and Brier score of the raw score and of the `calibration`'s probability."""
    groups = {"all": np.arange(len(pairs))}
    genres = np.asarray(pairs.meta.get("genre", []))
    for genre in sorted(set(genres.tolist())):
        groups[genre] = np.flatnonzero(genres == genre)
    return {
        name: pair_metrics(torch.from_numpy(scores[idx]), torch.from_numpy(pairs.gold[idx]), positive_threshold, threshold)
        | figures(torch.from_numpy(scores[idx]), torch.from_numpy(pairs.gold[idx] >= positive_threshold), calibration) | {"n": len(idx)}
        for name, idx in groups.items()
    }


def _json_safe(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """NaN (e.g. AUC with one gold class) becomes null, so metrics.json is strict JSON."""
    return {name: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()} for name, m in results.items()}


def _x100(value: float) -> str:
    return "nan" if math.isnan(value) else f"{100 * value:.2f}"


def table_rows(results: dict[str, dict[str, float]]) -> list[list[str]]:
    return [["subset", "n", *(HEADERS.get(k, k) for k in METRICS)], *([name, str(m["n"]), *(_x100(m[k]) for k in METRICS)] for name, m in results.items())]


def plot_scatter(scores: np.ndarray, gold: np.ndarray, score_range: Sequence[float] | None, threshold: float, path: Path, title: str) -> Path:
    """Predicted score against gold on the data's own scale, with the decision threshold."""
    from matplotlib.figure import Figure  # only when plotting

    lo, hi = (float(score_range[0]), float(score_range[1])) if score_range else (0.0, 1.0)
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.scatter(lo + gold * (hi - lo), scores, s=6, alpha=0.35, edgecolors="none")
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set(xlabel=f"gold ({lo:g}-{hi:g})", ylabel="predicted score", title=title)
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_curve(scores: np.ndarray, positive: np.ndarray, threshold: float, kind: str, path: Path, title: str) -> Path | None:
    """Precision/recall or ROC curve with the operating point at `threshold`; None when gold has
    only one class (neither curve exists)."""
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve, roc_curve

    if positive.all() or not positive.any():
        return None
    predicted = scores >= threshold
    recall = (predicted & positive).sum() / positive.sum()
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    if kind == "roc":
        fpr, tpr, _ = roc_curve(positive, scores)
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        point = ((predicted & ~positive).sum() / (~positive).sum(), recall)
        ax.set(xlabel="false positive rate", ylabel="true positive rate")
    else:
        precision, recall_curve, _ = precision_recall_curve(positive, scores)
        ax.plot(recall_curve, precision)
        point = (recall, (predicted & positive).sum() / max(predicted.sum(), 1))
        ax.set(xlabel="recall", ylabel="precision")
    ax.plot(*point, "o", color="tab:red", label=f"threshold {threshold:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(loc="lower left" if kind == "pr" else "lower right")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_reliability(scores: np.ndarray, positive: np.ndarray, calibration: Calibration | None, path: Path, title: str) -> Path:
    """Reliability diagram: share of similar pairs against mean probability per ECE bin, for the
    raw score read as a probability and for the calibrated one; the diagonal is perfect."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    raw = torch.from_numpy(scores)
    curves = {"raw score": probabilities(raw)} | ({"calibrated": calibration(raw)} if calibration is not None else {})
    for label, p in curves.items():
        points = reliability(p, torch.from_numpy(positive))
        ax.plot(points["probability"], points["positive"], "o-", markersize=4, label=f"{label}: ECE {ece(p, torch.from_numpy(positive)):.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"predicted probability ({ECE_BINS} equal-width bins)", ylabel="share of similar pairs", title=title)
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plotting(plots: str | bool) -> bool:
    """Whether to draw: plots=auto draws when the analysis extra (matplotlib, scikit-learn) is installed."""
    installed = all(importlib.util.find_spec(name) is not None for name in ("matplotlib", "sklearn"))
    if plots is True and not installed:
        raise STSError("plots=true needs matplotlib and scikit-learn: pip install 'sts[analysis]' (or plots=false)")
    return installed if plots == "auto" else bool(plots)


def check_out_dir(cfg: DictConfig, out_dir: Path) -> None:
    """Refuse an out_dir that holds, is or lies inside what is evaluated (a training run's folder
    holds its model.pt and its own metrics.json), and one whose metrics.json another command wrote."""
    splits = {f"data.{s}": OmegaConf.select(cfg.data, s, default=None, throw_on_missing=False) for s in SPLITS}
    check_apart({"out_dir": out_dir}, {"ckpt": cfg.ckpt, "calibration": cfg.get("calibration"), **splits})
    metrics = out_dir / "metrics.json"
    if metrics.exists() and not {"ckpt", "split", "plots"} <= set(marker_content(metrics) or {}):
        raise STSError(f"{metrics}: was not written by evaluate.py (a training run's record?) and would be replaced; choose another out_dir=")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score one split, print the table, write metrics.json and the plots into cfg.out_dir."""
    options.check(cfg, options.EVALUATE)
    if cfg.curve not in CURVES:
        raise STSError(f"curve={cfg.curve!r}: choose one of {CURVES}")
    out_dir = Path(cfg.out_dir)
    check_out_dir(cfg, out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise STSError(f"{out_dir}: cannot create out_dir ({e.strerror or e})") from None
    pairs, positive_threshold = read_split(cfg.data, cfg.split)
    # the raw score, as training measured it; calibration is measured beside it (ECE, Brier)
    model = load(cfg.ckpt, **(scoring_settings(cfg) | {"calibrated": False}), both_orders=cfg.get("both_orders"))
    calibration = model.module.calibration
    if cfg.threshold is not None and cfg.get("threshold_objective"):
        raise STSError("threshold= and threshold_objective= both set: give a threshold, or an objective to choose one on this split")
    scores = model.score(pairs.sentence1, pairs.sentence2, clip=False, progress=cfg.progress, chunk_size=int(cfg.chunk_size))
    threshold = model.threshold if cfg.threshold is None else float(cfg.threshold)
    chosen = f"stored with the model (chosen on dev by {model.module.trained_with.get('threshold_objective', 'f1')})" if cfg.threshold is None else "given"
    if cfg.get("threshold_objective"):
        threshold = choose_threshold(torch.from_numpy(scores), torch.from_numpy(pairs.gold) >= positive_threshold, cfg.threshold_objective)
        chosen = f"chosen on this split by {cfg.threshold_objective}; pass threshold={threshold:.4f} to predict.py to use it"
    results = metrics_by_group(scores, pairs, positive_threshold, threshold, calibration)
    name = f"{model.architecture} on {cfg.data.name} {cfg.split}"
    score_range = None if pairs.binary else cfg.data.score_range
    plots = [
        plot_scatter(scores, pairs.gold, score_range, threshold, out_dir / "scatter.png", name),
        plot_curve(scores, pairs.gold >= positive_threshold, threshold, cfg.curve, out_dir / f"{cfg.curve}_curve.png", name),
        plot_reliability(scores, pairs.gold >= positive_threshold, calibration, out_dir / "reliability.png", name),
    ] if plotting(cfg.get("plots", "auto")) else []
    record = {
        "ckpt": str(cfg.ckpt) if cfg.ckpt else "bundled",
        "data": cfg.data.name,
        "split": cfg.split,
        "threshold": threshold,
        "threshold_chosen": chosen,
        "positive_threshold": positive_threshold,
        "calibration": {"map": calibration.describe() if calibration is not None else None, "ece_binning": BINNING},
        "metrics": _json_safe(results),
        "plots": [p.name for p in plots if p],
    }
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    print(format_table(table_rows(results), title=f"{name}: {len(pairs)} pairs, x100, threshold {threshold:.3f}"))
    print(f"threshold {threshold:.4f}: {chosen}")
    overall = results["all"]
    if "ece" in overall:
        print(f"calibration ({BINNING}): ECE {overall['ece_raw']:.4f} -> {overall['ece']:.4f}, Brier {overall['brier_raw']:.4f} -> {overall['brier']:.4f} (raw score -> calibrated)")
    else:
        print(f"calibration ({BINNING}): ECE {overall['ece_raw']:.4f}, Brier {overall['brier_raw']:.4f} of the raw score (the model has no calibration)")
    print(f"wrote {out_dir / 'metrics.json'}" + (f" and {', '.join(p.name for p in plots if p)}" if any(plots) else ""))
    return record

@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def _main(cfg: DictConfig) -> None:
    run(evaluate, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
