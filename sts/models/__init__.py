"""Bi- and cross-encoder LightningModules, their shared base, encoders and losses."""
from sts.models.base import PairModule
from sts.models.bi_encoder import BiEncoder
from sts.models.cross_encoder import CrossEncoder

ARCHITECTURES: dict[str, type[PairModule]] = {"BiEncoder": BiEncoder, "CrossEncoder": CrossEncoder}

__all__ = ["ARCHITECTURES", "BiEncoder", "CrossEncoder", "PairModule"]
