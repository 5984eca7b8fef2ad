"""The networks and the one path from texts to scores: plain `nn.Module`s (bi- and cross-encoder),
tokenised inputs, the scorer with its precision and runtime backends, and metrics. Nothing here
imports the training stack or reads files other than a backend's graph cache.

The networks are imported on first use (PEP 562), so that a module of this package that needs no
torch (`sts.core.inputs`, `sts.core.checks`) can be imported by the server's HTTP front-end
without loading torch."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sts.core.bi_encoder import BiEncoder
    from sts.core.cross_encoder import CrossEncoder
    from sts.core.model import PairModel

_LAZY = {"BiEncoder": "sts.core.bi_encoder", "CrossEncoder": "sts.core.cross_encoder", "PairModel": "sts.core.model"}

__all__ = ["ARCHITECTURES", "BiEncoder", "CrossEncoder", "PairModel"]


def __getattr__(name: str) -> Any:
    if name == "ARCHITECTURES":
        return {"BiEncoder": __getattr__("BiEncoder"), "CrossEncoder": __getattr__("CrossEncoder")}
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
