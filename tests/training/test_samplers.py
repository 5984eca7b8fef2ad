import numpy as np

from sts.training.samplers import LengthGroupedSampler


def test_every_index_once_batches_grouped_and_reshuffled() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, size=1000)
    sampler = LengthGroupedSampler(lengths, batch_size=16, window=20, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(1000))
    batches = [first[i : i + 16] for i in range(0, 1000, 16)]
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[rng.permutation(1000)[:16]]) for _ in range(50)])
    assert spread < random_spread / 4
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_epoch_shuffle_is_a_seeded_permutation_per_epoch() -> None:
    from sts.training.samplers import EpochShuffleSampler

    sampler = EpochShuffleSampler(100, seed=5)
    first = list(sampler)
    assert sorted(first) == list(range(100)) and first != list(range(100))
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    sampler.set_epoch(0)
    assert list(sampler) == first
