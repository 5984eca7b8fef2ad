"""The networks and the one path from texts to scores: plain `nn.Module`s (bi- and cross-encoder),
tokenised inputs, the scorer with its precision and runtime backends, and metrics. Nothing here
imports the training stack or reads files other than a backend's graph cache."""
from sts.core.bi_encoder import BiEncoder
from sts.core.cross_encoder import CrossEncoder
from sts.core.model import PairModel

ARCHITECTURES: dict[str, type[PairModel]] = {"BiEncoder": BiEncoder, "CrossEncoder": CrossEncoder}

__all__ = ["ARCHITECTURES", "BiEncoder", "CrossEncoder", "PairModel"]
