"""augment.py: nearest-neighbour pairs from the training sentences, labelled by a teacher."""
from pathlib import Path

import numpy as np
import pytest
import torch

from sts.io import checkpoint
from sts.training.augmentation import augment, neighbour_pairs
from sts.data.readers import read_pairs
from sts.errors import STSError
from sts.resources import resource

from conftest import ROOT, compose_config
from helpers import run_cli


def test_neighbour_pairs_are_nearest_unique_and_skip_excluded() -> None:
    # two tight groups: {0, 1} near the x axis, {2, 3} near the y axis
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert neighbour_pairs(emb, [1], set()) == [(0, 1), (2, 3)]  # each unordered pair once
    assert neighbour_pairs(emb, [1], {(0, 1)}) == [(2, 3)]
    assert len(neighbour_pairs(emb, [1, 2, 3], set())) == 6  # ranks up to the group size reach everyone
    # rank 3 alone: each row's farthest other row, so only pairs across the two groups
    assert all((i < 2) != (j < 2) for i, j in neighbour_pairs(emb, [3], set()))
    assert neighbour_pairs(emb, [9], set()) == []  # a rank beyond the rows adds nothing
    with pytest.raises(STSError, match="ranks"):
        neighbour_pairs(emb, [0], set())


def test_random_partners_are_seeded_unique_and_never_self_pairs() -> None:
    emb = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    pairs = neighbour_pairs(emb, [1], set(), random_partners=3, seed=1)
    assert pairs == neighbour_pairs(emb, [1], set(), random_partners=3, seed=1)
    assert len(pairs) == len(set(pairs)) and all(i < j for i, j in pairs)
    assert len(pairs) > len(neighbour_pairs(emb, [1], set()))


@pytest.fixture
def small_train(tmp_path: Path) -> Path:
    path = tmp_path / "train.tsv"
    path.write_text("".join(Path(resource("stsb/sts-dev.csv")).read_text().splitlines(keepends=True)[:40]))
    return path


def test_augment_writes_new_labelled_pairs_readable_as_training_data(tiny_model_file: Path, small_train: Path, tmp_path: Path) -> None:
    out = tmp_path / "silver.tsv"
    cfg = compose_config("augment", [f"teacher={tiny_model_file}", f"out={out}", f"data.train={small_train}", "neighbours=2"])
    augment(cfg)
    silver, gold = read_pairs(out, "stsb", (0, 5)), read_pairs(small_train, "stsb", (0, 5))
    assert 0 < len(silver) <= 2 * len(set(gold.sentence1 + gold.sentence2))
    wider = tmp_path / "wider.tsv"
    augment(compose_config("augment", [f"teacher={tiny_model_file}", f"out={wider}", f"data.train={small_train}", "ranks=[1,8]", "random_partners=1"]))
    assert len(read_pairs(wider, "stsb", (0, 5))) > len(silver) // 2
    known = {frozenset(p) for p in zip(gold.sentence1, gold.sentence2)}
    assert not known & {frozenset(p) for p in zip(silver.sentence1, silver.sentence2)}
    assert set(silver.sentence1 + silver.sentence2) <= set(gold.sentence1 + gold.sentence2)
    teacher = checkpoint.load(tiny_model_file).score_texts(silver.sentence1, silver.sentence2)
    assert np.abs(silver.gold - teacher).max() < 1e-3  # the teacher's 0-1 score, written on the 0-5 scale


def test_gold_pairs_are_written_first_with_the_teachers_scores(tiny_model_file: Path, small_train: Path, tmp_path: Path) -> None:
    plain, both = tmp_path / "silver.tsv", tmp_path / "both.tsv"
    common = [f"teacher={tiny_model_file}", f"data.train={small_train}", "neighbours=2"]
    augment(compose_config("augment", [*common, f"out={plain}"]))
    augment(compose_config("augment", [*common, f"out={both}", "gold_pairs=true"]))
    silver, written, gold = (read_pairs(p, "stsb", (0, 5)) for p in (plain, both, small_train))
    n = len(gold)
    assert len(written) == n + len(silver)
    assert (written.sentence1[:n], written.sentence2[:n]) == (gold.sentence1, gold.sentence2)
    assert (written.sentence1[n:], written.sentence2[n:]) == (silver.sentence1, silver.sentence2)
    teacher = checkpoint.load(tiny_model_file).score_texts(gold.sentence1, gold.sentence2)
    assert np.abs(written.gold[:n] - teacher).max() < 1e-3  # relabelled, not the gold labels
    assert np.abs(written.gold[:n] - gold.gold).max() > 0.05


def test_augment_refuses_to_overwrite_or_to_sample_with_a_cross_encoder(tiny_model_file: Path, tiny_cross_model_file: Path, small_train: Path, tmp_path: Path) -> None:
    with pytest.raises(STSError, match="refusing to write over the input data.train="):
        augment(compose_config("augment", [f"teacher={tiny_model_file}", f"out={small_train}", f"data.train={small_train}", "overwrite=true"]))
    existing = tmp_path / "exists.tsv"
    existing.write_text("keep me\n")
    with pytest.raises(STSError, match="already exists"):
        augment(compose_config("augment", [f"teacher={tiny_model_file}", f"out={existing}", f"data.train={small_train}"]))
    assert existing.read_text() == "keep me\n"
    with pytest.raises(STSError, match="bi-encoder"):
        augment(compose_config("augment", [f"teacher={tiny_cross_model_file}", f"out={tmp_path / 'x.tsv'}", f"data.train={small_train}"]))
    assert not (tmp_path / "x.tsv").exists()


def test_cli_cross_teacher_with_bi_sampler(tiny_model_file: Path, tiny_cross_model_file: Path, small_train: Path, tmp_path: Path) -> None:
    out = tmp_path / "silver.tsv"
    args = [str(ROOT / "augment.py"), f"teacher=[{tiny_cross_model_file},{tiny_model_file}]", f"sampler={tiny_model_file}", f"out={out}", f"data.train={small_train}"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote" in result.stdout and len(read_pairs(out, "stsb", (0, 5))) > 0
