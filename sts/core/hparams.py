"""The hyper-parameters a model file records and the rule each value must pass, written once:
`sts.io.checkpoint` checks a file's fields with them and `sts.config.options` train.py's
`model.*` options. ARCHITECTURE keys build the network; TRAINING keys only say how it was trained
(sts.training.task.PairTask takes them) and are kept in the file as a record."""
from __future__ import annotations

from sts.core import checks
from sts.core.checks import Rule
from sts.core.pooling import POOLING_MODES

_SHARED: dict[str, Rule] = {
    "max_length": checks.integer(1, 8192),
    "freeze_encoder": checks.boolean(),
    "pooling": checks.choice(*POOLING_MODES),
    "head_dropout": checks.number(0, 1, hi_open=True),
}
ARCHITECTURE: dict[str, dict[str, Rule]] = {
    "BiEncoder": _SHARED | {"head_hidden": checks.integer(1, 65536)},
    "CrossEncoder": _SHARED | {"both_orders": checks.boolean(), "same_token_types": checks.boolean()},
}
TRAINING: dict[str, Rule] = {
    "encoder_lr": checks.number(0, 1),
    "head_lr": checks.number(0, 1),
    "weight_decay": checks.number(0, 10),
    "warmup_ratio": checks.number(0, 1),
    "layerwise_lr_decay": checks.number(0, 1, lo_open=True),
    "threshold_objective": checks.threshold_objective(),
}
# every key a model file's hparams may hold, per architecture
RECORDED: dict[str, dict[str, Rule]] = {name: rules | TRAINING for name, rules in ARCHITECTURE.items()}


def split(hparams: dict) -> tuple[dict, dict]:
    """(architecture, training) halves of a model config or a model file's hparams."""
    return {k: v for k, v in hparams.items() if k not in TRAINING}, {k: v for k, v in hparams.items() if k in TRAINING}
