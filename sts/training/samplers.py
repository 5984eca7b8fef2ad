"""Training-order samplers seeded by (seed, epoch), so a resumed run sees the same batches as an
uninterrupted one, with or without length grouping (the idea of Hugging Face Trainer's
`group_by_length`: random batches whose members have similar lengths, little padding)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A fresh random permutation each epoch, drawn from seed + epoch (not the global RNG)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed = size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng(self.seed + self.epoch).permutation(self.size).tolist())


class LengthGroupedSampler(EpochShuffleSampler):
    """Shuffle, cut into windows of `batch_size * window` examples, sort each window by length,
    cut into batches, shuffle the batches. Consecutive runs of `batch_size` indices form one
    batch; under DDP, Lightning's wrapper deals consecutive indices to ranks, which keeps each
    rank's batches grouped too. Reshuffles every epoch (seed + epoch)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, window: int = 50, seed: int = 0) -> None:
        super().__init__(len(lengths), seed)
        self.lengths = np.asarray(lengths)
        self.batch_size, self.window = batch_size, window

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        for i in rng.permutation(len(batches)):
            yield from batches[i].tolist()
