"""STS: train and apply semantic-textual-similarity models (bi- and cross-encoders).

`sts.load()` gives a model to score with; importing `sts` itself loads nothing heavy."""
from sts.errors import STSError

__version__ = "0.1.0"


def load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201  (sts.api.load's signature)
    """`sts.api.load`, imported on first use so `import sts` stays light."""
    from sts.api import load as _load

    return _load(*args, **kwargs)


def describe(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201  (sts.api.describe's signature)
    """`sts.api.describe`: what `load` would give, read and checked without building the network."""
    from sts.api import describe as _describe

    return _describe(*args, **kwargs)


def __getattr__(name: str):  # noqa: ANN202
    """`sts.LongInputs` (sts.core.windows): `load`'s window settings, imported on first use."""
    if name == "LongInputs":
        from sts.core.windows import LongInputs

        return LongInputs
    raise AttributeError(f"module 'sts' has no attribute {name!r}")


__all__ = ["LongInputs", "STSError", "describe", "load"]
