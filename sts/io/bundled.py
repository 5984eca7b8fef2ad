"""The bundled all-MiniLM-L6-v2 used zero-shot: what `sts.load()` gives with no path.

Its decision threshold is chosen on STS-B dev exactly as training chooses one (F1-maximising,
gold >= 4 of 5 is "similar") and shipped as data (`sts/resources/bundled/all-MiniLM-L6-v2.json`),
so loading it is instant and offline. `python -m sts.commands.calibrate` recomputes that file; a test
recomputes it and compares.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sts.core import BiEncoder
from sts.core.calibration import Calibration, stored

NAME = "all-MiniLM-L6-v2"
RECORD = Path(__file__).resolve().parent.parent / "resources" / "bundled" / f"{NAME}.json"
# as the zero_shot experiment (conf/encoder/minilm.yaml) and sentence-transformers use it
MAX_LENGTH = 128
POOLING = "mean"


def module() -> BiEncoder:
    """The bundled encoder as a bi-encoder (mean pooling, cosine), untrained."""
    from sts.io.encoders import load_pretrained

    tokenizer, encoder = load_pretrained(None)
    return BiEncoder(encoder=encoder, tokenizer=tokenizer, max_length=MAX_LENGTH, pooling=POOLING).eval()


def parts() -> tuple[Any, Any]:
    """(tokenizer, encoder config) of the bundled encoder, without building it."""
    from transformers import AutoConfig, AutoTokenizer

    from sts.io.encoders import check_source, check_tokenizer, resolve

    path = resolve(None)
    check_source(path)
    return check_tokenizer(AutoTokenizer.from_pretrained(path, trust_remote_code=False), path), AutoConfig.from_pretrained(path, trust_remote_code=False)


def record() -> dict[str, Any]:
    """The shipped calibration: threshold, probability calibration and STS-B dev/test metrics."""
    return json.loads(RECORD.read_text())


def calibration(found: dict[str, Any]) -> Calibration | None:
    """The record's probability calibration, checked as a model file's is (None when it has none)."""
    return stored(found.get("calibration"), f"{RECORD}: field calibration")
