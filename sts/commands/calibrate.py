"""The bundled model's shipped calibration (sts/resources/bundled/<name>.json): the threshold that
maximises F1 on STS-B dev and its dev/test metrics, measured as evaluate.py measures. For
maintainers: `python -m sts.commands.calibrate` rewrites the file; a test recomputes and compares."""
from __future__ import annotations

import json
from typing import Any

import torch

from sts.api import Model
from sts.commands.evaluate import read_split
from sts.config import compose
from sts.core.metrics import choose_threshold, pair_metrics
from sts.io import bundled


def calibrate(batch_size: int = 64) -> dict[str, Any]:
    """Score STS-B dev and test with the bundled model; the threshold that maximises dev F1."""
    model = Model(bundled.module(), {}, batch_size=batch_size, precision="fp32")  # the shipped figures are fp32, on any host
    data = compose("evaluate").data
    result: dict[str, Any] = {"model": bundled.NAME, "architecture": "BiEncoder", "pooling": bundled.POOLING, "max_length": bundled.MAX_LENGTH, "data": "stsb"}
    scores: dict[str, tuple[torch.Tensor, torch.Tensor, float]] = {}
    for split in ("val", "test"):
        pairs, positive_threshold = read_split(data, split)
        raw = model.score(pairs.sentence1, pairs.sentence2, clip=False)
        scores[split] = (torch.from_numpy(raw), torch.from_numpy(pairs.gold), positive_threshold)
    dev_scores, dev_gold, positive_threshold = scores["val"]
    threshold = choose_threshold(dev_scores, dev_gold >= positive_threshold, "f1")
    result["threshold"] = round(threshold, 6)
    for split, (s, gold, cut) in scores.items():
        result[split] = {k: round(v, 6) for k, v in pair_metrics(s, gold, cut, threshold).items()}
    result["made_by"] = "python -m sts.commands.calibrate"
    return result


if __name__ == "__main__":
    bundled.RECORD.write_text(json.dumps(calibrate(), indent=2) + "\n")
    print(f"wrote {bundled.RECORD}")
