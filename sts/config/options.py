"""Every user-facing option of every entry point, checked once at the edge (before any file is
read or model loaded), so a wrong value is one line naming the option, the value and what is
allowed, instead of a traceback from deep inside torch or Lightning.

Each entry point has a table {dotted key: rule}; `check(cfg, TABLE)` applies it. Keys absent from
a config (another data set, a trainer without that field) are skipped.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from sts.core import ann, checks
from sts.core.ann import INDEXES, STRUCTURES
from sts.core.checks import Invalid, Rule, boolean, choice, either, integer, number, optional, text
from sts.errors import STSError
from sts.core.pooling import POOLING_MODES
from sts.core.backends import QUANTIZATIONS
from sts.core.precision import BACKENDS, PRECISIONS
from sts.core.windows import RULES as LONG_INPUTS

OUTPUT_FORMATS = ("parquet", "csv", "jsonl")  # engine=ray's writers

_ABSENT = object()
LIGHTNING_PRECISIONS = ("64-true", "64", 64, "32-true", "32", 32, "16-mixed", "16", 16, "bf16-mixed", "bf16", "16-true", "bf16-true", "transformer-engine")


def device() -> Rule:
    """cpu, cuda, cuda:N or mps, and only one this torch can use (a CPU-only build has no cuda)."""

    def check(value: Any) -> str:
        import torch

        if not isinstance(value, str) or not (value in ("cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit())):
            raise Invalid("must be cpu, cuda, cuda:N or mps")
        if value.startswith("cuda"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            index = int(value[5:]) if ":" in value else 0
            if index >= count:
                raise Invalid(f"is not available: this torch sees {count} CUDA device(s){' (a CPU-only build)' if torch.version.cuda is None else ''}; use device=cpu")
        if value == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise Invalid("is not available on this machine; use device=cpu")
        return value

    return check


def accelerator() -> Rule:
    """Lightning's accelerator names, refusing a GPU this torch cannot use."""

    def check(value: Any) -> str:
        import torch

        choice("auto", "cpu", "gpu", "cuda", "mps", "tpu")(value)
        if value in ("gpu", "cuda") and not torch.cuda.is_available():
            raise Invalid("is not available: this torch sees no CUDA device; use trainer=cpu or trainer.accelerator=cpu")
        return value

    return check


def mining_index() -> Rule:
    """auto | exact | faiss, and faiss only where it is installed."""

    def check(value: Any) -> str:
        choice(*INDEXES)(value)
        if value == "faiss" and not ann.available():
            raise Invalid(f"needs FAISS, which is not installed: {ann.INSTALL}")
        return value

    return check


def texts(min_items: int = 1, max_items: int = 64) -> Rule:
    """A list of non-empty strings."""

    def check(value: Any) -> list[str]:
        if not isinstance(value, (list, tuple, ListConfig)) or not min_items <= len(value) <= max_items:
            raise Invalid(f"must be a list of {min_items}" + (f" to {max_items}" if max_items != min_items else "") + " non-empty strings")
        return [text()(v) for v in value]

    return check


def api_key() -> Rule:
    """A secret fit for an HTTP header: 8 to 4096 visible ASCII characters, no spaces."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not 8 <= len(value) <= 4096 or not all("!" <= c <= "~" for c in value):
            raise Invalid("must be 8 to 4096 visible ASCII characters without spaces")
        return value

    return check


SECRETS = frozenset({"api_key"})  # never shown in an error


def sentence_columns() -> Rule:
    def check(value: Any) -> list[str]:
        names = texts(2, 2)(value)
        if names[0] == names[1]:
            raise Invalid("must name two different columns")
        return names

    return check


def score_range() -> Rule:
    """[low, high] with low < high (gold is normalised by high - low)."""

    def check(value: Any) -> list[float]:
        if not isinstance(value, (list, tuple, ListConfig)) or len(value) != 2:
            raise Invalid("must be [low, high], two numbers with low < high")
        low, high = (number()(v) for v in value)
        if not low < high:
            raise Invalid("must be [low, high], two numbers with low < high")
        return [low, high]

    return check


def ranks() -> Rule:
    def check(value: Any) -> list[int]:
        if not isinstance(value, (list, tuple, ListConfig)) or not 1 <= len(value) <= 1000:
            raise Invalid("must be a list of neighbour ranks (integers >= 1), e.g. [2, 20]")
        return [integer(1, 10**7)(v) for v in value]

    return check


PROGRESS = choice("auto", True, False)
BATCH = integer(1, 65536)
PAD_MULTIPLE = integer(1, 4096)
SEED = integer(0, 2**32 - 1)
UNIT = optional(number(0, 1))

DATA: dict[str, Rule] = {
    "data.format": choice("stsb", "sick", "msrp", "table", "csv", "tsv", "jsonl"),
    "data.score_range": optional(score_range()),
    "data.positive_threshold": number(0, 1),
    "data.val_fraction": number(0, 1, hi_open=True),
    "data.batch_size": BATCH,
    "data.eval_batch_size": BATCH,
    "data.group_by_length": optional(boolean()),
    "data.symmetric": boolean(),
    "data.num_workers": integer(0, 256),
    "data.seed": SEED,
}

TRAIN: dict[str, Rule] = {
    "seed": SEED,
    "train": boolean(),
    "ckpt_path": optional(text()),
    "model_file": text(),
    "keep_checkpoints": boolean(),
    "overwrite": boolean(),
    **DATA,
    "encoder.name_or_path": optional(text()),
    "encoder.max_length": integer(1, 8192),
    "encoder.dropout": optional(number(0, 1, hi_open=True)),
    "encoder.packed_dropout": boolean(),
    "model.freeze_encoder": boolean(),
    "model.encoder_lr": number(0, 1),
    "model.head_lr": number(0, 1),
    "model.weight_decay": number(0, 10),
    "model.warmup_ratio": number(0, 1),
    "model.layerwise_lr_decay": number(0, 1, lo_open=True),
    "model.pooling": optional(choice(*POOLING_MODES)),
    "model.head_hidden": integer(1, 65536),
    "model.head_dropout": number(0, 1, hi_open=True),
    "model.both_orders": boolean(),
    "model.same_token_types": boolean(),
    "model.threshold_objective": checks.threshold_objective(),
    "soup.grid_step": number(0, 1, lo_open=True),
    "trainer.accelerator": accelerator(),
    "trainer.devices": either(integer(1, 4096), choice("auto")),
    "trainer.num_nodes": integer(1, 4096),
    "trainer.precision": choice(*LIGHTNING_PRECISIONS),
    "trainer.max_epochs": optional(integer(-1, 10**6)),
    "trainer.max_steps": integer(-1, 10**9),
    "trainer.val_check_interval": optional(number(0, None, lo_open=True)),
    "trainer.limit_train_batches": optional(number(0, None, lo_open=True)),
    "trainer.limit_val_batches": optional(number(0)),
    "trainer.limit_test_batches": optional(number(0)),
    "trainer.gradient_clip_val": optional(number(0)),
    "trainer.accumulate_grad_batches": integer(1, 65536),
    "trainer.log_every_n_steps": integer(1),
    "trainer.num_sanity_val_steps": integer(-1),
    "trainer.deterministic": either(boolean(), choice("warn")),
    "trainer.enable_progress_bar": boolean(),
    "callbacks.early_stopping.patience": integer(0),
    "callbacks.last_checkpoint.every_n_train_steps": optional(integer(1)),
}

SCORING: dict[str, Rule] = {
    "ckpt": text(),
    "batch_size": BATCH,
    "precision": choice(*PRECISIONS),
    "backend": choice(*BACKENDS),
    "quantize": optional(choice(*QUANTIZATIONS)),
    "calibration": optional(text()),
    "calibrated": boolean(),
    "device": device(),
    **LONG_INPUTS,
    "pad_to_multiple_of": PAD_MULTIPLE,
    "progress": PROGRESS,
    "overwrite": boolean(),
}

PREDICT: dict[str, Rule] = {
    **SCORING,
    "ckpt": optional(text()),
    "input": text(),
    "output": optional(text()),
    "format": optional(choice("csv", "tsv", "jsonl", "parquet")),
    "columns": optional(sentence_columns()),
    "threshold": UNIT,
    "both_orders": optional(boolean()),
    "chunk_size": integer(1, 10**7),
    "preview_rows": integer(0, 10**4),
    "trainer.devices": integer(1, 4096),
    "trainer.num_nodes": integer(1, 4096),
    "engine": choice("local", "ray"),
    "ray.address": optional(text()),
    "ray.concurrency": optional(integer(1, 10**5)),
    "ray.num_cpus": number(0, 4096),
    "ray.num_gpus": number(0, 1024),
    "ray.batch_size": integer(1, 10**7),
    "ray.output_format": choice(*OUTPUT_FORMATS),
}

EVALUATE: dict[str, Rule] = {
    **{k: v for k, v in SCORING.items() if k != "overwrite"},
    "ckpt": optional(text()),
    **DATA,
    "split": choice("val", "test"),
    "out_dir": text(),
    "threshold": UNIT,
    "both_orders": optional(boolean()),
    "curve": choice("pr", "roc"),
    "plots": choice("auto", True, False),
    "threshold_objective": optional(checks.threshold_objective()),
    "chunk_size": integer(1, 10**7),
    "seed": SEED,
}

EMBED: dict[str, Rule] = {
    **SCORING,
    "ckpt": optional(text()),
    "input": text(),
    "out": text(),
    "format": optional(choice("text", "csv", "tsv", "jsonl")),
    "column": optional(text()),
    "pooling": optional(choice(*POOLING_MODES)),
    "cluster.k": optional(integer(1, 10**6)),
    "cluster.seed": SEED,
    "encoder.name_or_path": optional(text()),
    "encoder.max_length": integer(1, 8192),
}

MINE: dict[str, Rule] = {
    **SCORING,
    "ckpt": optional(text()),
    "input": text(),
    "output": optional(text()),
    "format": optional(choice("text", "csv", "tsv", "jsonl")),
    "column": optional(text()),
    "top_k": optional(integer(1, 10**5)),
    "threshold": UNIT,
    "max_pairs": integer(1, 10**8),
    "rerank": optional(text()),
    "preview_rows": integer(0, 10**4),
    "index": mining_index(),
    "ann.auto_from": integer(2, 10**12),
    "ann.structure": choice(*STRUCTURES),
    "ann.m": integer(2, 256),
    "ann.ef_construction": integer(1, 10**5),
    "ann.ef_search": integer(1, 10**5),
    "ann.nlist": optional(integer(1, 10**7)),
    "ann.nprobe": integer(1, 10**7),
    "embeddings": optional(text()),
}

SERVE: dict[str, Rule] = {
    "ckpt": optional(text()),
    "host": text(),
    "port": integer(1, 65535),
    "workers": integer(1, 256),
    "device": choice("cpu", "cuda", "mps", "auto"),
    "devices": either(integer(1, 4096), choice("auto")),
    "threads": optional(integer(1, 4096)),
    "malloc_mmap_threshold": optional(integer(4096, 2**25)),
    "api_servers": integer(1, 256),
    "fast_queue": boolean(),
    "max_batch_size": integer(1, 65536),
    "batch_timeout": number(0, 60),
    "batch_size": BATCH,
    "precision": choice(*PRECISIONS),
    "backend": choice(*BACKENDS),
    "quantize": optional(choice(*QUANTIZATIONS)),
    "calibration": optional(text()),
    "calibrated": boolean(),
    **LONG_INPUTS,
    "pad_to_multiple_of": PAD_MULTIPLE,
    "max_pairs": integer(1, 10**7),
    "max_chars": integer(1, 10**7),
    "max_tokens": optional(integer(1, 10**10)),
    "max_payload_bytes": integer(1024, 2**34),
    "max_queued": either(integer(1, 10**9), choice("auto")),
    "api_key": optional(api_key()),
    "timeout": number(0, 3600, lo_open=True),
    "log_level": choice("critical", "error", "warning", "info", "debug"),
}

EXPORT: dict[str, Rule] = {
    "ckpt": text(),
    "format": choice("sentence-transformers", "hf", "onnx"),
    "out": text(),
    "overwrite": boolean(),
}

CALIBRATE: dict[str, Rule] = {
    "ckpt": text(),
    **DATA,
    "out": text(),
    "overwrite": boolean(),
    "batch_size": BATCH,
    "device": device(),
    "seed": SEED,
}

AUGMENT: dict[str, Rule] = {
    **{k: v for k, v in SCORING.items() if k not in ("ckpt", "progress")},
    **DATA,
    "teacher": either(text(), texts()),
    "sampler": optional(text()),
    "neighbours": integer(1, 10**4),
    "ranks": optional(ranks()),
    "random_partners": integer(0, 10**4),
    "gold_pairs": boolean(),
    "out": text(),
    "seed": SEED,
}


def _value(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True, throw_on_resolution_failure=True)
    except MissingMandatoryValue:
        raise STSError(f"option {key} is required: add {key}=...") from None
    except OmegaConfBaseException as e:
        raise STSError(f"option {key}: cannot be resolved ({str(e).splitlines()[0][:200]})") from None
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def check(cfg: DictConfig, rules: Mapping[str, Rule]) -> None:
    """Raise one STSError for the first option outside its rule; normalised values (e.g. a
    number given as a string) are written back so the run uses what was checked."""
    for key, rule in rules.items():
        value = _value(cfg, key)
        if value is _ABSENT:
            continue
        try:
            normalised = rule(value)
        except Invalid as e:
            raise STSError(f"option {key}={'<hidden>' if key in SECRETS else checks.shown(value)} {e}") from None
        if normalised != value and not isinstance(normalised, list):
            OmegaConf.update(cfg, key, normalised, merge=False)
