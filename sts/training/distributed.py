"""Scoring in several processes with Lightning's predict loop (predict.py trainer.devices=N):
each process scores a shard with the same `Scorer` as one process, rank 0 merges in input order."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from sts.core.scorer import Scorer


class _ShardWriter(BasePredictionWriter):
    """Each rank saves its (index, score) pairs; rank 0 merges them in input order."""

    def __init__(self, folder: Path) -> None:
        super().__init__(write_interval="epoch")
        self.folder = folder

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence, batch_indices: Sequence) -> None:
        index = torch.cat([p["index"] for p in predictions]) if predictions else torch.empty(0, dtype=torch.long)
        score = torch.cat([p["score"] for p in predictions]) if predictions else torch.empty(0)
        torch.save({"index": index, "score": score}, self.folder / f"rank{trainer.global_rank}.pt")


def _text_batch(batch: list[tuple[int, str, str]]) -> dict[str, object]:
    return {"index": torch.as_tensor([b[0] for b in batch]), "texts1": [b[1] for b in batch], "texts2": [b[2] for b in batch]}


class ScoringTask(L.LightningModule):
    """Lightning's predict loop around the scorer one process uses, so precision and backends
    behave the same in every process (the trainer itself runs in fp32: the scorer autocasts)."""

    def __init__(self, scorer: Scorer) -> None:
        super().__init__()
        self.scorer = scorer
        self.model = scorer.module

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        scores = self.scorer(batch["texts1"], batch["texts2"])
        return {"index": batch["index"], "score": torch.from_numpy(scores)}


def score_distributed(scorer: Scorer, texts1: Sequence[str], texts2: Sequence[str], trainer_kwargs: dict, workdir: Path, chunk_size: int) -> np.ndarray | None:
    """Score over several processes with Lightning's predict loop (DDP, one per device).

    Each process scores a shard of the pairs in chunks of `chunk_size` (distinct sentences encoded
    once per chunk) with `scorer`; a prediction writer saves each shard and rank 0 returns all scores in input
    order. Other ranks return None. `workdir` must be visible to every process.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = list(zip(range(len(texts1)), texts1, texts2))
    loader = DataLoader(data, batch_size=chunk_size, shuffle=False, collate_fn=_text_batch)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, callbacks=[_ShardWriter(workdir)], **(trainer_kwargs | {"precision": "32-true"}))
    trainer.predict(ScoringTask(scorer), loader, return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    scores = np.full(len(texts1), np.nan, dtype=np.float32)
    for rank in range(trainer.world_size):
        shard = torch.load(workdir / f"rank{rank}.pt", weights_only=True)
        scores[shard["index"].numpy()] = shard["score"].float().numpy()
    return scores
