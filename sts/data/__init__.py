"""Reading, validating, tokenising and batching sentence pairs."""
from sts.data.datamodule import PairDataModule
from sts.data.readers import Pairs, read_pairs

__all__ = ["PairDataModule", "Pairs", "read_pairs"]
