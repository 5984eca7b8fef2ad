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
import tempfile
from pathlib import Path
from typing import Any

import torch

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


def read(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, refusing anything that is not a plain-data STS checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise STSError(f"{path}: checkpoint not found" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise STSError(f"{path}: refused to load: the checkpoint holds objects other than plain data and tensors, which could run code ({str(e).splitlines()[0][:160]})") from None
    except Exception as e:  # torch raises many types for corrupt files (RuntimeError, KeyError, EOFError...)
        raise STSError(f"{path}: not a readable checkpoint (truncated or not a torch file): {str(e).splitlines()[0][:160]}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("sts"), dict) or "state_dict" not in checkpoint:
        raise STSError(f"{path}: not an STS checkpoint (no model payload); use a model.pt or .ckpt written by train.py")
    return checkpoint


def build(payload: dict[str, Any]) -> PairModule:
    """An untrained module with the architecture, encoder and tokenizer a payload describes."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    architecture = payload.get("architecture")
    if architecture not in ARCHITECTURES:
        raise STSError(f"unknown architecture {architecture!r} in checkpoint (known: {sorted(ARCHITECTURES)})")
    encoder_config = dict(payload["encoder_config"])
    config = AutoConfig.for_model(encoder_config.pop("model_type"), **encoder_config)
    encoder = AutoModel.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in payload["tokenizer_files"].items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    module = ARCHITECTURES[architecture](encoder=encoder, tokenizer=tokenizer, loss=None, **payload["hparams"])
    module.threshold = float(payload.get("threshold", 0.5))
    return module


def load(path: str | Path, architecture: str | None = None) -> PairModule:
    """A ready-to-score module from a model.pt or a Lightning .ckpt written by train.py."""
    checkpoint = read(path)
    payload = checkpoint["sts"]
    if architecture is not None and payload.get("architecture") != architecture:
        raise STSError(f"{path}: checkpoint is a {payload.get('architecture')}, but {architecture} was requested")
    module = build(payload)
    try:
        module.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as e:
        raise STSError(f"{path}: weights do not match the {payload.get('architecture')} they claim to be: {str(e).splitlines()[0][:200]}") from None
    module.checkpoint_metrics = payload.get("metrics", {})
    return module.eval()
