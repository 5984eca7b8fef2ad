"""One LightningDataModule for every sentence-pair data set (chosen by the `data=` config)."""
from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from sts.core.inputs import PairCollator, PairInputs, TokenizedPairs, lengths, select
from sts.data.readers import SPLITS, Pairs, read_splits
from sts.training.samplers import EpochShuffleSampler, LengthGroupedSampler
from sts.errors import STSError

class PairDataModule(L.LightningDataModule):
    """Reads and validates each split once, tokenises once, pads per batch.

    Training batches are random but length-grouped (`group_by_length`, see samplers.py; None
    means on, and training turns it off for losses that rank the pairs of a batch);
    evaluation splits are sorted by token length, as scoring sorts raw text, so batches carry
    little padding; their metrics do not depend on order. `symmetric` trains a cross-encoder on both orders of every pair, since
    its joined input, unlike a cosine, is not symmetric. `positive_threshold` (a fraction of the
    score range) binarises graded gold for accuracy/F1/AUC and for choosing the decision threshold.
    """

    def __init__(
        self,
        train: str | Sequence[str] | None,
        val: str | Sequence[str] | None = None,
        test: str | Sequence[str] | None = None,
        format: str = "table",
        score_range: Sequence[float] | None = (0.0, 5.0),
        columns: dict[str, str | None] | None = None,
        positive_threshold: float = 0.8,
        val_fraction: float = 0.0,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        group_by_length: bool | None = None,
        symmetric: bool = False,
        num_workers: int = 0,
        seed: int = 0,
        name: str | None = None,
        inputs: PairInputs | None = None,
    ) -> None:
        super().__init__()
        self.paths = {"train": train, "val": val, "test": test}
        self.format, self.score_range, self.columns = format, score_range, columns
        self.val_fraction, self.seed, self.name = val_fraction, seed, name
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.group_by_length = group_by_length
        self.symmetric = symmetric
        self.inputs = inputs
        self.both_orders = False
        self._positive_threshold = positive_threshold
        self.pairs: dict[str, Pairs] = {}
        self.datasets: dict[str, TokenizedPairs] = {}

    @property
    def binary(self) -> bool:
        return next(iter(self.pairs.values())).binary if self.pairs else False

    @property
    def positive_threshold(self) -> float:
        """Gold at or above this (0-1 scale) counts as similar; 0.5 for binary labels."""
        return 0.5 if self.binary else self._positive_threshold

    def attach(self, inputs: PairInputs, both_orders: bool = False, ranks_within_batch: bool = False) -> None:
        """How the model that the data will feed reads text (its tokenizer, length and layout);
        with `both_orders` the evaluation splits carry the reversed pairs too. With group_by_length
        unset, a loss that ranks the pairs of a batch (CoSENT) gets random, ungrouped batches, since
        batches of similar-length pairs narrow what each batch ranks."""
        self.inputs, self.both_orders = inputs, both_orders
        if self.group_by_length is None:
            self.group_by_length = not ranks_within_batch

    def read(self) -> dict[str, Pairs]:
        """Read and validate every configured split (no tokenizer needed)."""
        if not self.pairs:
            self.pairs = read_splits(self.paths, self.format, self.score_range, self.columns, self.val_fraction, self.seed)
        return self.pairs

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.inputs is None:
            raise STSError("PairDataModule needs the model's inputs (attach) before setup()")
        for split, pairs in self.read().items():
            if split == "train" and self.symmetric and self.inputs.joined:
                pairs = pairs.with_reversed()
            enc = self.inputs.pairs(pairs.sentence1, pairs.sentence2, self.both_orders and split != "train")
            if split != "train":
                order = np.argsort(lengths(enc), kind="stable")
                pairs = self.pairs[split] = pairs.subset(order)
                enc = select(enc, order)
            self.datasets[split] = TokenizedPairs(enc, pairs.gold)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise STSError(f"data: no {split!r} split configured (set data.{split}=PATH)")
        ds = self.datasets[split]
        sampler = None
        if shuffle:
            grouped = self.group_by_length is not False
            sampler = LengthGroupedSampler(ds.lengths(), self.batch_size, seed=self.seed) if grouped else EpochShuffleSampler(len(ds), self.seed)
        return DataLoader(
            ds,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            sampler=sampler,
            collate_fn=PairCollator(ds, self.inputs),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def has_split(self, split: str) -> bool:
        return split in self.read()

