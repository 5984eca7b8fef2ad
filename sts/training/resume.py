"""Resuming a training run: a Lightning checkpoint is vetted field by field before
`Trainer.fit(ckpt_path=...)` restores it (optimizer, schedulers, callbacks' states and the files
they name), and the callbacks that make a resumed run continue exactly (random state, a
checkpoint written on SIGTERM)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from sts.core import checks
from sts.errors import STSError
from sts.io.checkpoint import _field, check_weights, read
from sts.training.task import PairTask


def check_resumable(path: str | Path, task: PairTask) -> str:
    """Vet a Lightning checkpoint before `Trainer.fit(ckpt_path=...)` loads it: plain data only,
    written by a training run (not a model.pt), and the architecture and tensor shapes of the
    configured model."""
    checkpoint = read(path, type(task.model).__name__)
    missing = [k for k in ("epoch", "global_step", "loops", "optimizer_states", "lr_schedulers", "callbacks") if k not in checkpoint]
    if missing:
        raise STSError(f"{path}: not a Lightning training checkpoint (no {', '.join(missing)}): a model.pt cannot be resumed; resume from <run dir>/checkpoints/last.ckpt with ckpt_path=last")
    for key in ("epoch", "global_step"):
        _field(Path(path), key, checkpoint[key], checks.integer(0))
    for key, kind in (("loops", dict), ("optimizer_states", list), ("lr_schedulers", list), ("callbacks", dict)):
        if not isinstance(checkpoint[key], kind):
            raise STSError(f"{path}: checkpoint field {key} is not a {kind.__name__}")
    path = Path(path)
    _field(path, "loops", checkpoint["loops"], lambda v: checks.plain_data(v, leaf=_is_count))
    _field(path, "callbacks", checkpoint["callbacks"], lambda v: checks.plain_data(v, leaf=_is_plain_or_tensor))
    _field(path, "lr_schedulers", checkpoint["lr_schedulers"], checks.plain_data)
    _check_optimizer_state(path, checkpoint["optimizer_states"], checkpoint["lr_schedulers"], task)
    _check_callbacks(path, checkpoint["callbacks"])
    check_weights(path, task.model, checkpoint["state_dict"])
    return str(path)


def _is_count(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, int) and value >= 0)


def _is_plain_or_tensor(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float)) or (isinstance(value, torch.Tensor) and value.numel() <= 2**20)


def _check_optimizer_state(path: Path, optimizers: list[Any], schedulers: list[Any], task: PairTask) -> None:
    """One AdamW state whose parameter groups and moment shapes are those of the configured
    model, and one scheduler with a learning rate per group, so restoring cannot fail (or
    allocate) deep inside torch."""
    groups = task.param_groups()
    params = [p for g in groups for p in g["params"]]
    if len(optimizers) != 1 or not isinstance(optimizers[0], dict):
        raise STSError(f"{path}: checkpoint field optimizer_states does not hold one optimizer state")
    state, saved_groups = optimizers[0].get("state"), optimizers[0].get("param_groups")
    if not isinstance(state, dict) or not isinstance(saved_groups, list) or not all(isinstance(g, dict) for g in saved_groups):
        raise STSError(f"{path}: checkpoint field optimizer_states[0] is not an optimizer state (state, param_groups)")
    saved_counts = [len(ids) if isinstance(ids := g.get("params"), list) and all(type(i) is int for i in ids) else -1 for g in saved_groups]
    if saved_counts != [len(g["params"]) for g in groups]:
        raise STSError(f"{path}: checkpoint field optimizer_states[0].param_groups does not match the configured model's parameter groups")
    for group in saved_groups:
        _field(path, "optimizer_states[0].param_groups", group, checks.plain_data)
        for key in ("lr", "initial_lr", "eps", "weight_decay"):
            if key in group:
                _field(path, f"optimizer_states[0].param_groups.{key}", group[key], checks.number(0, 10))
        betas = group.get("betas", (0.9, 0.999))
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise STSError(f"{path}: checkpoint field optimizer_states[0].param_groups.betas is not a pair")
        for beta in betas:
            _field(path, "optimizer_states[0].param_groups.betas", beta, checks.number(0, 1, hi_open=True))
    for index, moments in state.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(moments, dict):
            raise STSError(f"{path}: checkpoint field optimizer_states[0].state has an entry {checks.shown(index)} that is no parameter of the model")
        for name, value in moments.items():
            tensor = isinstance(value, torch.Tensor)
            if not tensor and not isinstance(value, (int, float)) or tensor and value.dim() > 0 and value.shape != params[index].shape:
                raise STSError(f"{path}: checkpoint field optimizer_states[0].state[{index}][{checks.shown(name)}] does not fit parameter {index}")
            if tensor and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise STSError(f"{path}: checkpoint field optimizer_states[0].state[{index}][{name!r}] holds NaN or infinite values")
    if len(schedulers) != 1 or not isinstance(schedulers[0], dict):
        raise STSError(f"{path}: checkpoint field lr_schedulers does not hold one scheduler state")
    for key in ("base_lrs", "_last_lr"):
        values = schedulers[0].get(key, [])
        if key in schedulers[0] and (not isinstance(values, list) or len(values) != len(groups) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise STSError(f"{path}: checkpoint field lr_schedulers[0].{key} is not one learning rate per parameter group")
    for key in ("last_epoch", "_step_count"):
        if key in schedulers[0]:
            _field(path, f"lr_schedulers[0].{key}", schedulers[0][key], checks.integer(-1))


# counters and scores that Lightning's callbacks restore and then do arithmetic with
_CALLBACK_COUNTS = ("wait_count", "stopped_epoch", "patience")
_CALLBACK_SCORES = ("best_score", "best_model_score", "kth_value", "current_score")


def _check_callbacks(path: Path, callbacks: dict[str, Any]) -> None:
    """Counters are counts and scores scalar tensors; and a ModelCheckpoint's state names files
    it will later read or delete (the best, the k best, the last): each must lie directly in the
    folder that state records, so a planted "/home/me/thesis.tex" or "checkpoints/../../x" is
    refused instead of removed on resume."""
    for name, state in callbacks.items():
        if not isinstance(state, dict):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name, 40)}] is not a mapping")
        for key in _CALLBACK_COUNTS:
            if key in state:
                _field(path, f"callbacks[{checks.shown(name, 40)}].{key}", state[key], checks.integer(0))
        optional = {"best_model_score", "current_score"}  # None until a first score exists
        scores = [state[k] for k in _CALLBACK_SCORES if k in state and not (k in optional and state[k] is None)]
        scores += list(state["best_k_models"].values()) if isinstance(state.get("best_k_models"), dict) else []
        if any(not (isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point()) for v in scores):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name, 40)}] holds a score that is not a scalar tensor")
        if "dirpath" not in state:
            continue
        folder = state["dirpath"]
        if not isinstance(folder, str):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name)}].dirpath is not a path")
        named = [state.get(k) for k in ("best_model_path", "kth_best_model_path", "last_model_path")]
        best_k = state.get("best_k_models") or {}
        if not isinstance(best_k, dict):
            raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name)}].best_k_models is not a mapping")
        for file in [*named, *best_k]:
            if file in (None, ""):
                continue
            if not isinstance(file, str) or ".." in Path(file).parts or Path(file).resolve().parent != Path(folder).resolve():
                raise STSError(f"{path}: checkpoint field callbacks[{checks.shown(name, 40)}] names {checks.shown(file)}, outside its checkpoint folder {folder!r}")


class RandomState(Callback):
    """Keeps the random generators' state in Lightning checkpoints, so a resumed run draws the
    same shuffles and dropout masks as an uninterrupted one (plain tensors and ints only).

    On a restart Lightning creates the train iterator twice, one seed draw more than an
    uninterrupted run; the state reached after the first (replayed) one is put back before the
    first batch."""

    def __init__(self) -> None:
        self._restored = False
        self._first_batch_state: torch.Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": list(np.random.get_state())}
        state["numpy"][1] = torch.from_numpy(state["numpy"][1].astype(np.int64))
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        try:
            torch.set_rng_state(state_dict["torch"])
            random.setstate(tuple(state_dict["python"]))
            kind, keys, *rest = state_dict["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
            if "cuda" in state_dict and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state_dict["cuda"])
        except Exception as e:  # any malformed field; the state is data from a file
            raise STSError(f"checkpoint: the random generators' state it holds is damaged ({type(e).__name__}: {str(e)[:120]})") from None
        self._restored = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._restored:
            self._first_batch_state, self._restored = torch.get_rng_state(), False

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._first_batch_state is not None:
            torch.set_rng_state(self._first_batch_state)
            self._first_batch_state = None


class InterruptCheckpoint(Callback):
    """On SIGTERM (a cluster's pre-emption, `kill`), write `dirpath/last.ckpt` before the run
    exits, so `ckpt_path=last` continues from where it stopped instead of the last validation.
    Lightning raises SIGTERMException only at a batch boundary, so the state is consistent;
    other exceptions (Ctrl-C anywhere, errors) keep the last validation's checkpoint."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.written: Path | None = None  # what this run wrote, so its clean-up removes only that

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.training:
            self.written = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(self.written)
