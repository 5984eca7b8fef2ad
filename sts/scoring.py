"""Scoring raw sentence pairs with a trained module: precision, device, progress. Used by
predict, evaluate and the benchmarks, so they all measure the same code path."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sts.backends import BACKENDS, DEFAULT_QUANTIZE, OnnxEncoder, OpenVinoEncoder
from sts.errors import STSError
from sts.models import PairModule
from sts.models.base import Encode
from sts.precision import PRECISIONS, choose_backend, resolve


class Scorer:
    """Callable (texts1, texts2) -> scores, in input order.

    precision: auto | fp32 | bf16 for the torch and openvino backends (sts.precision;
    `self.precision` is what runs: auto's choice, or what OpenVINO compiled). backend: auto |
    torch | onnx | openvino (sts.backends: ONNX Runtime with `quantize` dynamic | static | none,
    static calibrated on `calibration` sentences; OpenVINO with quantize none (the fp32 graph) or
    static (NNCF's int8 graph)). auto: sts.precision.choose_backend. quantize None: the backend's
    default (onnx dynamic, openvino none).
    """

    def __init__(self, module: PairModule, batch_size: int = 64, precision: str = "auto", device: str = "cpu", backend: str = "auto",
                 quantize: str | None = None, calibration: Sequence[str] | None = None) -> None:
        if backend not in BACKENDS:
            raise STSError(f"backend={backend!r}: choose one of {BACKENDS}")
        if precision not in PRECISIONS:
            raise STSError(f"precision={precision!r}: choose one of {PRECISIONS}")
        self.device = torch.device(device)
        if backend not in ("auto", "torch") and self.device.type != "cpu":
            raise STSError(f"backend={backend} runs on the CPU; device={device} scores with backend=torch")
        self.module = module.to(self.device).eval()
        self.batch_size = batch_size
        if backend == "auto":
            backend, chosen = choose_backend(precision, device, cross_encoder=module.joined)
            quantize = quantize or chosen
        self.backend = backend
        self.encode: Encode | None = None
        if backend == "torch":
            self.precision = resolve(precision, device)
            return
        quantize = quantize or DEFAULT_QUANTIZE[backend]
        if backend == "openvino":
            self.encode = OpenVinoEncoder(self.module, resolve(precision, device), quantize, calibration)
            self.precision = self.encode.precision
            return
        self.encode = OnnxEncoder(self.module, quantize, calibration)
        self.precision = "fp32" if quantize == "none" else "int8"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the module runs in: bf16 autocast for torch, nothing for fp32 and the
        graph backends (they run their own precision)."""
        if self.backend == "torch" and self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __call__(self, texts1: Sequence[str], texts2: Sequence[str], clip: bool = True) -> np.ndarray:
        with self.autocast():
            return self.module.score_texts(texts1, texts2, self.batch_size, clip=clip, encode=self.encode)


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


class _ShardWriter(BasePredictionWriter):
    """Each rank saves its (index, score) pairs; rank 0 merges them in input order."""

    def __init__(self, folder: Path) -> None:
        super().__init__(write_interval="epoch")
        self.folder = folder

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence, batch_indices: Sequence) -> None:
        index = torch.cat([p["index"] for p in predictions]) if predictions else torch.empty(0, dtype=torch.long)
        score = torch.cat([p["score"] for p in predictions]) if predictions else torch.empty(0)
        torch.save({"index": index, "score": score}, self.folder / f"rank{trainer.global_rank}.pt")


def _text_batch(batch: list[tuple[int, str, str]], batch_size: int) -> dict[str, object]:
    """A chunk of raw pairs for PairModule.predict_step, with the batch size to score it in."""
    return {"index": torch.as_tensor([b[0] for b in batch]), "texts1": [b[1] for b in batch], "texts2": [b[2] for b in batch], "batch_size": batch_size}


def score_distributed(
    module: PairModule, texts1: Sequence[str], texts2: Sequence[str], trainer_kwargs: dict, workdir: Path, batch_size: int, chunk_size: int
) -> np.ndarray | None:
    """Score over several processes with Lightning's predict loop (DDP, one per device).

    Each process scores a shard of the pairs in chunks of `chunk_size` (distinct sentences encoded
    once per chunk); a prediction writer saves each shard and rank 0 returns all scores in input
    order. Other ranks return None. `workdir` must be visible to every process.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = list(zip(range(len(texts1)), texts1, texts2))
    loader = DataLoader(data, batch_size=chunk_size, shuffle=False, collate_fn=partial(_text_batch, batch_size=batch_size))
    trainer = L.Trainer(logger=False, enable_checkpointing=False, callbacks=[_ShardWriter(workdir)], **trainer_kwargs)
    trainer.predict(module, loader, return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    scores = np.full(len(texts1), np.nan, dtype=np.float32)
    for rank in range(trainer.world_size):
        shard = torch.load(workdir / f"rank{rank}.pt", weights_only=True)
        scores[shard["index"].numpy()] = shard["score"].float().numpy()
    return scores
