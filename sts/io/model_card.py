"""What a model is and where it came from, from its own record: `Model.info` (`model_info`,
also `Description.info`) of the bundled model, model files and folders alike."""
from __future__ import annotations

from typing import Any

from sts.core.calibration import Calibration


def model_info(architecture: str, encoder: Any, max_length: int, pooling: str | None, both_orders: bool | None, threshold: float,
               precision: str, backend: str, origin: dict[str, Any], calibration: Calibration | None = None, calibrated: bool = False) -> dict[str, Any]:
    """`Model.info` (and `Description.info`): what the model is, how it scores, where it came from.
    `threshold` is on the scale of the scores (a probability when `calibrated`)."""
    return {
        "architecture": architecture,
        "encoder": {
            "model_type": encoder.model_type,
            "name": getattr(encoder, "_name_or_path", "") or None,
            "layers": getattr(encoder, "num_hidden_layers", None),
            "hidden_size": getattr(encoder, "hidden_size", None),
        },
        "max_length": max_length,
        "pooling": pooling,
        "both_orders": both_orders,
        "threshold": float(threshold),
        "calibration": calibration.describe() if calibration is not None else None,
        "calibrated": calibrated,
        "precision": precision,
        "backend": backend,
        **origin,
    }


def file_origin(path: Any, metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """Where a model file came from, as its record says: the metrics it measured, the data and
    model config it was trained with, its training hyper-parameters and its run (command,
    hardware, time, commit; files written before runs were recorded have none)."""
    return {
        "source": str(path),
        "threshold_source": f"dev of {metrics.get('data', 'its training data')}, chosen at training by {training.get('threshold_objective', 'f1')}",
        "metrics": {k: v for k, v in metrics.items() if k not in ("config", "data", "run")},
        "trained_on": metrics.get("data"),
        "made_by": metrics.get("config"),
        "training": dict(training),
        "run": metrics.get("run"),
    }
