"""Model soups: weight mixing, the greedy dev-driven choice, and train.py's soup mode."""
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sts import checkpoint
from sts.errors import STSError
from sts.soup import greedy, grid, mix
from sts.training import train


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
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    record = json.loads((out / "metrics.json").read_text())
    weights, trials = record["soup"]["weights"], record["soup"]["trials"]
    assert sum(weights) == pytest.approx(1.0) and len(trials) == 2 + 3
    # the reported dev score is the chosen soup's, the best of every mix tried
    assert metrics["val/spearman"] == pytest.approx(max(t["dev"] for t in trials), abs=1e-6)
    assert metrics["val/spearman"] == pytest.approx(record["soup"]["dev_spearman"], abs=1e-6)
    assert "test/spearman" in metrics
    # the saved model holds exactly that mix of the ingredients' weights
    states = [checkpoint.read(p)["state_dict"] for p in (tiny_model_file, second_tiny_model_file)]
    saved = checkpoint.read(out / "model.pt")["state_dict"]
    for name, value in mix(states, weights).items():
        assert torch.allclose(saved[name], value, atol=1e-6), name
    assert metrics["train_seconds"] > 0  # includes the ingredients' training


def test_a_soup_needs_two_ingredients_of_one_architecture(tiny_cfg, tiny_model_file, tiny_cross_model_file) -> None:
    with pytest.raises(STSError, match="at least two model files"):
        train(tiny_cfg(f"soup={{ingredients:['{tiny_model_file}'],grid_step:0.25}}"))
    with pytest.raises(STSError, match="is a CrossEncoder, but BiEncoder was requested"):
        train(tiny_cfg(f"soup={{ingredients:['{tiny_model_file}','{tiny_cross_model_file}'],grid_step:0.25}}"))


def test_a_soup_scores_as_its_model_config_says(tiny_cfg, tiny_cross_model_file) -> None:
    assert checkpoint.load(tiny_cross_model_file).both_orders is False
    f = tiny_cross_model_file
    cfg = tiny_cfg("model=cross_encoder", "model.both_orders=true", f"soup={{ingredients:['{f}','{f}'],grid_step:0.5}}")
    train(cfg)
    assert checkpoint.load(cfg.model_file).both_orders is True


def test_ingredient_patches_replace_target_nodes_merge_the_rest_and_leave_the_run_alone(tiny_cfg, tmp_path) -> None:
    from sts.training import ingredient_config

    cfg = tiny_cfg("loss=cosent_cosine")
    patch = OmegaConf.create({"loss": {"_target_": "sts.models.losses.CoSENTLoss", "scale": 10.0}, "model": {"encoder_lr": 1e-3}})
    sub = ingredient_config(cfg, patch, tmp_path / "ingredient")
    assert OmegaConf.to_container(sub.loss) == {"_target_": "sts.models.losses.CoSENTLoss", "scale": 10.0}
    assert sub.model.encoder_lr == 1e-3 and sub.model.head_lr == cfg.model.head_lr
    assert sub.model_file == str(tmp_path / "ingredient" / "model.pt") and not sub.soup.ingredients
    assert cfg.model.encoder_lr != 1e-3 and cfg.model_file != sub.model_file  # the run's own config is untouched
    with pytest.raises(STSError, match="model.encoder_lrr is not a config field"):
        ingredient_config(cfg, OmegaConf.create({"model": {"encoder_lrr": 1e-3}}), tmp_path / "x")


def test_default_soup_trains_its_ingredients_then_mixes_them(tiny_cfg) -> None:
    cfg = tiny_cfg("soup=cosine_cosent", "soup.grid_step=0.5")
    metrics = train(cfg)
    out = Path(cfg.paths.output_dir)
    record = json.loads((out / "metrics.json").read_text())
    assert record["loss"] == "soup(CosineMSELoss+CoSENTLoss)"
    assert record["soup"]["ingredients"] == [str(out / "ingredients" / k / "model.pt") for k in ("0", "1")]
    for k, loss in (("0", "CosineMSELoss"), ("1", "CoSENTLoss")):
        assert json.loads((out / "ingredients" / k / "metrics.json").read_text())["loss"] == loss
    assert metrics["val/spearman"] == pytest.approx(record["soup"]["dev_spearman"], abs=1e-6)


def test_a_rerun_reuses_trained_ingredients_but_refuses_ones_from_another_config(tiny_cfg) -> None:
    cfg = tiny_cfg("soup=cosine_cosent", "soup.grid_step=0.5", "ckpt_path=last")  # nothing to resume yet: trains both
    train(cfg)
    ingredient = Path(cfg.paths.output_dir) / "ingredients" / "1" / "model.pt"
    trained_at = ingredient.stat().st_mtime_ns
    train(cfg)  # e.g. resumed after an interruption during the mixing
    assert ingredient.stat().st_mtime_ns == trained_at
    with pytest.raises(STSError, match=r"ingredients/0: holds a model trained with another configuration than soup ingredient 0"):
        train(tiny_cfg("soup=cosine_cosent", "soup.grid_step=0.5", "model.encoder_lr=1e-3"))
    assert ingredient.stat().st_mtime_ns == trained_at


def test_a_soup_resumes_only_with_ckpt_path_last(tiny_cfg, tiny_model_file) -> None:
    with pytest.raises(STSError, match="a soup resumes its interrupted ingredient with ckpt_path=last"):
        train(tiny_cfg("soup=cosine_cosent", f"ckpt_path={tiny_model_file}"))
