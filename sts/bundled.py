"""The bundled all-MiniLM-L6-v2 used zero-shot: what `sts.load()` gives with no path.

Its decision threshold is chosen on STS-B dev exactly as training chooses one (F1-maximising,
gold >= 4 of 5 is "similar") and shipped as data (`sts/resources/bundled/all-MiniLM-L6-v2.json`),
so loading it is instant and offline. `python -m sts.bundled` recomputes that file; a test
recomputes it and compares.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sts.metrics import choose_threshold, pair_metrics
from sts.models import BiEncoder

NAME = "all-MiniLM-L6-v2"
RECORD = Path(__file__).resolve().parent / "resources" / "bundled" / f"{NAME}.json"
# as the zero_shot experiment (conf/encoder/minilm.yaml) and sentence-transformers use it
MAX_LENGTH = 128
POOLING = "mean"


def module() -> BiEncoder:
    """The bundled encoder as a bi-encoder (mean pooling, cosine), untrained."""
    from sts.models.encoder import load_pretrained

    tokenizer, encoder = load_pretrained(None)
    return BiEncoder(encoder=encoder, tokenizer=tokenizer, max_length=MAX_LENGTH, pooling=POOLING).eval()


def record() -> dict[str, Any]:
    """The shipped calibration: threshold and STS-B dev/test metrics."""
    return json.loads(RECORD.read_text())


def calibrate(batch_size: int = 64) -> dict[str, Any]:
    """Score STS-B dev and test with the bundled model; the threshold that maximises dev F1."""
    from sts.config import compose
    from sts.evaluation import read_split

    from sts.api import Model

    model = Model(module(), {}, batch_size=batch_size, precision="fp32")  # the shipped figures are fp32, on any host
    data = compose("evaluate").data
    result: dict[str, Any] = {"model": NAME, "architecture": "BiEncoder", "pooling": POOLING, "max_length": MAX_LENGTH, "data": "stsb"}
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
    result["made_by"] = "python -m sts.bundled"
    return result


if __name__ == "__main__":
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(calibrate(), indent=2) + "\n")
    print(f"wrote {RECORD}")
