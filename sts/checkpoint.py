"""Self-contained, safe checkpoints.

A model file carries architecture, hyper-parameters, the encoder's config, the tokenizer's
files and the decision threshold beside the weights, all as plain types and tensors, so
`predict.py` needs nothing but the file and loading it never unpickles code
(`torch.load(weights_only=True)`). Lightning's own `.ckpt` files written during training
carry the same payload and load the same way.
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from sts.errors import STSError
from sts.models import ARCHITECTURES, PairModule


def save(module: PairModule, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Write weights + payload (no optimizer state) through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    payload = {"sts": module.payload() | {"metrics": metrics or {}}, "state_dict": state}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read(path: str | Path, architecture: str | None = None) -> dict[str, Any]:
    """The checkpoint's contents, refusing anything that is not a plain-data STS checkpoint
    (of `architecture`, when given)."""
    path = Path(path)
    if not path.is_file():
        raise STSError(f"{path}: checkpoint not found" + (" (it is a directory)" if path.is_dir() else ""))
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; anything else is not ours or is cut short
        raise STSError(f"{path}: not a readable checkpoint (truncated or not a torch file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = next((line.strip() for line in str(e).splitlines() if "Unsupported" in line), str(e).splitlines()[0])
        raise STSError(f"{path}: refused to load: the checkpoint holds objects other than plain data and tensors, which could run code ({reason[:160]})") from None
    except Exception as e:  # torch raises many types for corrupt files (RuntimeError, KeyError, EOFError...)
        raise STSError(f"{path}: not a readable checkpoint (truncated or not a torch file): {str(e).splitlines()[0][:160]}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("sts"), dict) or "state_dict" not in checkpoint:
        raise STSError(f"{path}: not an STS checkpoint (no model payload); use a model.pt or .ckpt written by train.py")
    found = checkpoint["sts"].get("architecture")
    if architecture is not None and found != architecture:
        raise STSError(f"{path}: checkpoint is a {found}, but {architecture} was requested")
    return checkpoint


def _shapes(state_dict: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def check_weights(path: str | Path, module: PairModule, state_dict: dict[str, Any]) -> None:
    """One clear line when a checkpoint's tensors do not fit `module` (other encoder size,
    other head), instead of torch's multi-line size-mismatch report."""
    expected, found = _shapes(module.state_dict()), _shapes(state_dict)
    if expected != found:
        differing = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise STSError(
            f"{path}: weights do not match the {type(module).__name__} they are loaded into: {len(differing)} tensor(s) differ in name or shape, e.g. {differing[0]!r}"
        )


def build(payload: dict[str, Any], path: str | Path = "checkpoint") -> PairModule:
    """An untrained module with the architecture, encoder and tokenizer a payload describes
    (`path` names the payload's file in errors)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    architecture = payload.get("architecture")
    if architecture not in ARCHITECTURES:
        raise STSError(f"{path}: unknown architecture {architecture!r} in checkpoint (known: {sorted(ARCHITECTURES)})")
    try:
        encoder_config = dict(payload["encoder_config"])
        config = AutoConfig.for_model(encoder_config.pop("model_type"), **encoder_config)
        encoder = AutoModel.from_config(config)
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in payload["tokenizer_files"].items():
                (Path(tmp) / name).write_text(text, encoding="utf-8")
            tokenizer = AutoTokenizer.from_pretrained(tmp)
        module = ARCHITECTURES[architecture](encoder=encoder, tokenizer=tokenizer, loss=None, **payload["hparams"])
    except (KeyError, TypeError, ValueError, OSError) as e:
        raise STSError(f"{path}: the payload does not describe a valid {architecture} ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    module.threshold = float(payload.get("threshold", 0.5))
    return module


def check_resumable(path: str | Path, module: PairModule) -> str:
    """Vet a Lightning checkpoint before `Trainer.fit(ckpt_path=...)` loads it: plain data only,
    and the architecture and tensor shapes of the configured model."""
    check_weights(path, module, read(path, type(module).__name__)["state_dict"])
    return str(path)


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
        torch.set_rng_state(state_dict["torch"])
        random.setstate(state_dict["python"])
        kind, keys, *rest = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        self._restored = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._restored:
            self._first_batch_state, self._restored = torch.get_rng_state(), False

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._first_batch_state is not None:
            torch.set_rng_state(self._first_batch_state)
            self._first_batch_state = None


def load(path: str | Path, architecture: str | None = None) -> PairModule:
    """A ready-to-score module from a model.pt or a Lightning .ckpt written by train.py."""
    checkpoint = read(path, architecture)
    payload = checkpoint["sts"]
    module = build(payload, path)
    check_weights(path, module, checkpoint["state_dict"])
    module.load_state_dict(checkpoint["state_dict"], strict=True)
    module.checkpoint_metrics = payload.get("metrics", {})
    return module.eval()
