"""What a training run prints: Lightning's noise filtered out, and progress that a log can show.

A terminal gets Lightning's progress bar. Anywhere else (a log file, nohup, CI) a bar is
carriage-return garbage, so `ProgressLog` writes one line per stage at a sensible rate instead:
steps done, rate, loss, elapsed and ETA, then the stage's result.
"""
from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

log = logging.getLogger("sts.progress")

# Lightning's info lines that say nothing a user acts on (an advertisement, defaults restated)
NOISE = (
    "💡 Tip:",
    "`Trainer(limit_train_batches=",
    "`Trainer(limit_val_batches=",
    "`Trainer(limit_test_batches=",
    "`Trainer(limit_predict_batches=",
    "`Trainer(val_check_interval=",
    "Loading `train_dataloader` to estimate",
    "TPU available:",
    "HPU available:",
)
LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _Noise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE)


def quiet_lightning() -> None:
    """Drop Lightning's noise lines and the deprecation warning its own pytree code raises on
    every fit (torch deprecated LeafSpec; nothing for a user to change). Idempotent."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Noise) for f in logger.filters):
            logger.addFilter(_Noise())
    if logging.getLogger().hasHandlers():
        # Lightning gives its loggers a console handler of their own when imported before logging is
        # set up, and otherwise lets them propagate as well: imported once Hydra has configured the
        # run's logging (inference never imports it earlier), every line would print twice. Its lines
        # go through the run's handlers (console and the run's log file) instead.
        for name in ("lightning", "lightning.fabric", "lightning.pytorch"):
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)
            logger.propagate = True
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def is_terminal() -> bool:
    return sys.stderr.isatty()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressLog(Callback):
    """Progress lines while fitting, validating and testing, when stderr is not a terminal.

    Args:
        every_n_seconds: at most one training line per this interval (and one per epoch end).
        enabled: auto (only when stderr is not a terminal), true or false.
    """

    def __init__(self, every_n_seconds: float = 30.0, enabled: str | bool = "auto") -> None:
        self.every_n_seconds = every_n_seconds
        self.enabled = enabled
        self._fit_start = self._last = self._stage_start = 0.0
        self._first_step = self._logged_step = 0

    def _active(self, trainer: L.Trainer) -> bool:
        if not trainer.is_global_zero:
            return False
        return not is_terminal() if self.enabled == "auto" else bool(self.enabled)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = self._last = time.perf_counter()
        self._first_step = self._logged_step = trainer.global_step
        if self._active(trainer):
            log.info("training: %d optimizer steps, %s epochs", trainer.estimated_stepping_batches, trainer.max_epochs)

    def _line(self, trainer: L.Trainer) -> str:
        total = max(int(trainer.estimated_stepping_batches), 1)
        step, elapsed = trainer.global_step, time.perf_counter() - self._fit_start
        rate = (step - self._first_step) / elapsed if elapsed > 0 else 0.0
        eta = (total - step) / rate if rate > 0 else float("nan")
        loss = trainer.callback_metrics.get("train/loss")
        parts = [
            f"training: step {step}/{total} ({100 * step / total:.0f}%)",
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
            f"{rate:.2f} steps/s",
            *([f"loss {float(loss):.4f}"] if loss is not None else []),
            f"elapsed {_duration(elapsed)}",
            f"ETA {_duration(eta) if eta == eta else '?'}",
        ]
        return ", ".join(parts)

    def _log_training(self, trainer: L.Trainer) -> None:
        """A training line, unless this step has had one."""
        if self._active(trainer) and trainer.global_step != self._logged_step:
            self._last, self._logged_step = time.perf_counter(), trainer.global_step
            log.info(self._line(trainer))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if time.perf_counter() - self._last >= self.every_n_seconds:
            self._log_training(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log_training(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":  # where training stands before its dev result
            self._log_training(trainer)
        self._stage_start = time.perf_counter()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stage_start = time.perf_counter()

    def _end(self, trainer: L.Trainer, split: str) -> None:
        if not self._active(trainer) or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(f"{split}/spearman")
        result = f"spearman {100 * float(value):.2f}" if value is not None else "done"
        name = "dev" if split == "val" else "test"
        log.info("%s: %s (%s)", name, result, _duration(time.perf_counter() - self._stage_start))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end(trainer, "test")
