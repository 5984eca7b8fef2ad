"""Experiment tracking with wandb (`logger=wandb`): a logger that never fails training and a
callback that adds what Lightning's per-step logging does not (epoch loss, final metrics and
threshold, predicted-vs-gold scatter, worst-scored pairs) and ends the run with its Hydra job."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.logger import DummyExperiment
from lightning.pytorch.trainer.states import TrainerFn

log = logging.getLogger(__name__)


def sweep_group() -> str | None:
    """The multirun's sweep directory (one wandb group per sweep), None outside a multirun."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return str(HydraConfig.get().sweep.dir)
    return None


class SafeWandbLogger(WandbLogger):
    """WandbLogger that falls back to offline, then to a disabled run, when wandb cannot start
    (no network, bad credentials, service error): tracking must never cost a training run.
    `group=None` groups the jobs of a Hydra multirun by their sweep."""

    def __init__(self, *args: Any, group: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, group=group or sweep_group(), **kwargs)

    @property
    def experiment(self) -> Any:
        modes = [None, "offline", "disabled"]
        for mode, fallback in zip(modes, [*modes[1:], "no tracking"]):
            if mode is not None:
                self._wandb_init["mode"] = mode
            try:
                return super().experiment
            except Exception as e:  # wandb raises many types (CommError, UsageError, timeouts)
                if self._experiment is not None:
                    return self._experiment
                log.warning("wandb could not start a run (%s); falling back to %s", e, fallback)
        self._experiment = DummyExperiment()
        return self._experiment


@contextmanager
def never_fails(what: str) -> Iterator[None]:
    """A tracking error becomes a warning, never a failed training."""
    try:
        yield
    except Exception as e:
        log.warning("wandb: could not log %s: %s", what, e)


class WandbTracking(Callback):
    """Configured by `logger=wandb` (conf/callbacks/wandb_tracking.yaml).

    Args:
        worst_pairs: rows of the table of pairs with the largest |predicted - gold|.
        max_points: at most this many (seeded random) pairs in the scatter plot.
    """

    def __init__(self, worst_pairs: int = 20, max_points: int = 5000) -> None:
        self.worst_pairs, self.max_points = worst_pairs, max_points
        self._loss: list[torch.Tensor] = []
        self._predictions: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    @staticmethod
    def _runs(trainer: L.Trainer) -> list[Any]:
        return [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)] if trainer.is_global_zero else []

    # --- training loss per epoch (per step comes from the module's own logging) ---------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loss = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._loss.append(loss.detach())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._loss:
            pl_module.log("train/loss_epoch", torch.stack(self._loss).mean(), sync_dist=True)

    # --- per-pair predictions of the final evaluations (not those during fit) ----------------------
    def _collect(self, trainer: L.Trainer, outputs: Any, batch: dict[str, Any], split: str) -> None:
        """The batch's scores, as the module's evaluation step returned them (no second pass)."""
        if trainer.state.fn != TrainerFn.FITTING and "index" in batch and isinstance(outputs, dict):
            scores = outputs["scores"]
            self._predictions.setdefault(split, []).append((batch["index"].cpu(), scores.detach().float().cpu()))

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(trainer, outputs, batch, "val")

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(trainer, outputs, batch, "test")

    def _gather(self, trainer: L.Trainer, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(pair index, score) from every rank, each pair once (samplers pad with repeats)."""
        local = self._predictions.pop(split, [])
        parts = [local]
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            parts = [None] * trainer.world_size
            torch.distributed.all_gather_object(parts, local)
        pairs = [(i, s) for part in parts for idx, scores in part for i, s in zip(idx.tolist(), scores.tolist())]
        unique = dict(pairs)
        index = np.fromiter(unique.keys(), dtype=np.int64, count=len(unique))
        return index, np.fromiter(unique.values(), dtype=np.float64, count=len(unique))

    def _report(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            return
        with never_fails(f"{split} predictions"):
            index, scores = self._gather(trainer, split)
            runs = self._runs(trainer)
            if not runs or not len(index):
                return
            import wandb

            pairs = trainer.datamodule.pairs[split]
            gold = np.asarray(pairs.gold, dtype=np.float64)[index]
            shown = np.random.default_rng(0).permutation(len(index))[: self.max_points]
            scatter = wandb.Table(columns=["gold", "predicted"], data=[[float(gold[i]), float(scores[i])] for i in shown])
            worst = np.argsort(-np.abs(scores - gold), kind="stable")[: self.worst_pairs]
            rows = [[pairs.sentence1[index[i]], pairs.sentence2[index[i]], float(gold[i]), float(scores[i]), float(abs(scores[i] - gold[i]))] for i in worst]
            metrics = {f"{split}/{k}": v for k, v in pl_module.last_metrics.get(split, {}).items()}
            for run in runs:
                run.summary.update(metrics | {"threshold": float(pl_module.model.threshold)})
                run.log(
                    {
                        f"{split}/scatter": wandb.plot.scatter(scatter, "gold", "predicted", title=f"{split}: predicted vs gold"),
                        f"{split}/worst_pairs": wandb.Table(columns=["sentence1", "sentence2", "gold", "predicted", "error"], data=rows),
                        "trainer/global_step": trainer.global_step,
                    }
                )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, pl_module, "test")

    # --- one run per Hydra job ------------------------------------------------------------------
    def _finish(self, trainer: L.Trainer, exit_code: int = 0) -> None:
        for run in self._runs(trainer):
            with never_fails("the end of the run"):
                run.finish(exit_code=exit_code)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Finish after the job's last evaluation (test, or dev when there is no test split), so
        the next job of a multirun in this process starts its own run."""
        has_test = getattr(trainer.datamodule, "has_split", lambda split: False)("test")
        if stage == "test" or (stage == "validate" and not has_test):
            self._finish(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._finish(trainer, exit_code=1)
