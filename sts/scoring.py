"""Scoring raw sentence pairs with a trained module: precision, device, progress. Used by
predict, evaluate and the benchmarks, so they all measure the same code path."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from sts.errors import STSError
from sts.models import PairModule

PRECISIONS = ("fp32", "bf16")


class Scorer:
    """Callable (texts1, texts2) -> scores, in input order."""

    def __init__(self, module: PairModule, batch_size: int = 64, precision: str = "fp32", device: str = "cpu") -> None:
        if precision not in PRECISIONS:
            raise STSError(f"precision={precision!r}: choose one of {PRECISIONS}")
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.batch_size = batch_size
        self.precision = precision

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __call__(self, texts1: Sequence[str], texts2: Sequence[str], clip: bool = True) -> np.ndarray:
        with self._autocast():
            return self.module.score_texts(texts1, texts2, self.batch_size, clip=clip)


def progress(total: int | None, enabled: str | bool = "auto", unit: str = "pairs", desc: str | None = None) -> tqdm:
    """A bar with rate and ETA on a terminal; silent when stderr is not one (logs, pipes, CI)."""
    show = sys.stderr.isatty() if enabled == "auto" else bool(enabled)
    return tqdm(total=total, unit=unit, desc=desc, disable=not show, dynamic_ncols=True)


def chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def count_lines(path: str) -> int:
    """Fast upper bound on the rows of a file, for a progress bar's total."""
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n
