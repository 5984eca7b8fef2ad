"""Model soups: weight mixing, the greedy dev-driven choice, and train.py's soup mode."""
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sts.io import checkpoint
from sts.errors import STSError
from sts.training.soup import greedy, grid, mix
from sts.training.recipe import run_recipe
from sts.training.fit import train

# its tests share a module fixture that is expensive to build: one test process runs them all
pytestmark = pytest.mark.xdist_group("soup_models")


def test_mix_is_the_weighted_average_of_float_tensors_and_keeps_integer_buffers() -> None:
    a = {"w": torch.tensor([0.0, 4.0]), "ids": torch.tensor([1, 2])}
    b = {"w": torch.tensor([8.0, 0.0]), "ids": torch.tensor([7, 7])}
    out = mix([a, b], [0.25, 0.75])
    assert torch.equal(out["w"], torch.tensor([6.0, 1.0]))
    assert torch.equal(out["ids"], a["ids"])


def test_grid_must_divide_one() -> None:
    assert grid(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(STSError, match="must divide 1"):
        grid(0.3)


def test_greedy_finds_the_best_mixing_weight_on_dev() -> None:
    states = [{"w": torch.tensor(0.0)}, {"w": torch.tensor(1.0)}]
    result = greedy(states, lambda s: -abs(float(s["w"]) - 0.3), 0.1)  # dev peaks at 0.3 of the second
    assert result.weights == pytest.approx([0.7, 0.3])
    assert result.dev_score == pytest.approx(0.0, abs=1e-6)
    assert len(result.trials) == 2 + 9  # each ingredient alone, then the 9 inner grid points


def test_greedy_keeps_one_ingredient_when_mixing_does_not_help_and_ignores_a_useless_third() -> None:
    states = [{"w": torch.tensor(0.0)}, {"w": torch.tensor(1.0)}, {"w": torch.tensor(-1.0)}]
    result = greedy(states, lambda s: float(s["w"]), 0.5)  # higher is better: ingredient 2 alone
    assert result.weights == [0.0, 1.0, 0.0]
    assert result.dev_score == 1.0


@pytest.fixture(scope="module")
def second_tiny_model_file(tiny_encoder, tmp_path_factory):
    """Another bi-encoder from the tiny encoder, fitted with another seed and learning rate."""
    from conftest import TINY_TRAINER, compose_train

    out = tmp_path_factory.mktemp("trained-other")
    train(compose_train([f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER, "seed=7", "model.encoder_lr=1e-3"], out))
    return out / "model.pt"


def test_train_with_a_soup_saves_the_dev_chosen_mix_and_records_it(tiny_cfg, tiny_model_file, second_tiny_model_file) -> None:
    cfg = tiny_cfg(f"soup={{ingredients:['{tiny_model_file}','{second_tiny_model_file}'],grid_step:0.25}}")
    metrics = run_recipe(cfg)
    record = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    weights, trials = record["soup"]["weights"], record["soup"]["trials"]
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)
    # the reported dev score is the chosen soup's, the best of every mix tried
    assert max(t["dev"] for t in trials) == pytest.approx(record["soup"]["dev_spearman"])
    assert metrics["val/spearman"] == pytest.approx(record["soup"]["dev_spearman"], abs=1e-6)
    saved = checkpoint.read(cfg.model_file, "BiEncoder")["sts"]["metrics"]["config"]
    assert saved == {"soup": [str(tiny_model_file), str(second_tiny_model_file)], "weights": weights}


def test_a_soup_needs_two_ingredients_of_one_architecture(tiny_cfg, tiny_model_file, tiny_cross_model_file) -> None:
    with pytest.raises(STSError, match="a soup needs at least two model files"):
        run_recipe(tiny_cfg(f"soup={{ingredients:['{tiny_model_file}'],grid_step:0.25}}"))
    with pytest.raises(STSError, match="BiEncoder"):
        run_recipe(tiny_cfg(f"soup={{ingredients:['{tiny_model_file}','{tiny_cross_model_file}'],grid_step:0.25}}"))


def test_a_soup_scores_as_its_model_config_says(tiny_cfg, tiny_cross_model_file) -> None:
    assert checkpoint.load(tiny_cross_model_file).both_orders is False
    f = tiny_cross_model_file
    cfg = tiny_cfg("model=cross_encoder", "model.both_orders=true", f"soup={{ingredients:['{f}','{f}'],grid_step:0.5}}")
    run_recipe(cfg)
    assert checkpoint.load(cfg.model_file).both_orders is True


def test_train_refuses_a_soup_it_would_not_cook(tiny_cfg, tiny_model_file) -> None:
    with pytest.raises(STSError, match="run it with sts.training.recipe.run_recipe"):
        train(tiny_cfg(f"soup={{ingredients:['{tiny_model_file}','{tiny_model_file}'],grid_step:0.5}}"))


def test_default_soup_trains_its_ingredient_stages_then_mixes_them(tiny_cfg) -> None:
    cfg = tiny_cfg("soup=cosine_cosent", "soup.grid_step=0.5")
    metrics = run_recipe(cfg)
    out = Path(cfg.paths.output_dir)
    record = json.loads((out / "metrics.json").read_text())
    assert record["loss"] == "soup(CosineMSELoss+CoSENTLoss)"
    assert record["soup"]["ingredients"] == [str(out / "stages" / k / "model.pt") for k in ("cosine", "cosent")]
    stages = [json.loads((out / "stages" / k / "metrics.json").read_text()) for k in ("cosine", "cosent")]
    assert [s["loss"] for s in stages] == ["CosineMSELoss", "CoSENTLoss"]
    assert metrics["val/spearman"] == pytest.approx(record["soup"]["dev_spearman"], abs=1e-6)
    # the soup's seconds are its ingredients' plus the mixing, each counted once
    ingredients = sum(s["metrics"]["train_seconds"] for s in stages)
    assert ingredients < metrics["train_seconds"] < ingredients + 60
    assert list(record["stages"]) == ["cosine", "cosent"] and record["stage_seconds"] == 0


def test_a_rerun_reuses_trained_stages_but_refuses_ones_from_another_config(tiny_cfg) -> None:
    cfg = tiny_cfg("soup=cosine_cosent", "soup.grid_step=0.5")
    run_recipe(cfg)
    ingredient = Path(cfg.paths.output_dir) / "stages" / "cosent" / "model.pt"
    trained_at = ingredient.stat().st_mtime_ns
    run_recipe(tiny_cfg("soup=cosine_cosent", "soup.grid_step=0.5", "overwrite=true"))  # the mixing again, over its own finished run
    assert ingredient.stat().st_mtime_ns == trained_at
    with pytest.raises(STSError, match=r"stages/cosine: holds stage cosine of another configuration"):
        run_recipe(tiny_cfg("soup=cosine_cosent", "soup.grid_step=0.5", "model.encoder_lr=1e-3", "overwrite=true"))
    assert ingredient.stat().st_mtime_ns == trained_at


def test_a_soup_refuses_a_checkpoint_to_resume(tiny_cfg, tiny_model_file) -> None:
    with pytest.raises(STSError, match="ckpt_path: a soup is not resumed from a checkpoint"):
        run_recipe(tiny_cfg("soup=cosine_cosent", f"ckpt_path={tiny_model_file}"))
