"""Every config group composes and instantiates what it names."""
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from sts.config import CONFIG_DIR
from sts.errors import STSError

from conftest import compose_config, compose_train


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["data", "model", "loss", "trainer", "callbacks", "logger", "encoder", "paths", "soup"])
def test_every_option_composes(group: str, tmp_path: Path) -> None:
    for option in options(group):
        cfg = compose_train([f"{group}={option}"], tmp_path)
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        node = container[group]
        if isinstance(node, dict) and "_target_" in node:
            assert get_class(node["_target_"])


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment: str, tmp_path: Path) -> None:
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    assert get_class(cfg.model._target_) and get_class(cfg.loss._target_)
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # every interpolation resolves
    assert container["task_name"] == experiment
    for callback in container["callbacks"].values():
        assert callback is None or get_class(callback["_target_"])


def test_cross_encoder_defaults_to_bce_unless_overridden(tmp_path: Path) -> None:
    assert compose_train(["model=cross_encoder"], tmp_path).loss._target_.endswith("BCELoss")
    assert compose_train(["model=cross_encoder", "loss=cosent"], tmp_path).loss._target_.endswith("CoSENTLoss")
    assert compose_train([], tmp_path).loss._target_.endswith("CosineMSELoss")  # the bi-encoder recipe chosen on dev


def test_bundled_data_resolves_inside_the_package(tmp_path: Path) -> None:
    cfg = compose_train([], tmp_path)
    assert Path(cfg.data.train).is_file() and "sts/resources/stsb" in cfg.data.train


def _recipe(cfg) -> dict:
    """What a run trains, without where it writes and what it is called."""
    container = OmegaConf.to_container(cfg, resolve=False)
    for key in ("task_name", "soup", "stages", "paths", "model_file"):
        container.pop(key)
    return container


def test_default_soup_trains_exactly_the_recorded_ingredient_recipes(tmp_path: Path) -> None:
    """train.py's defaults are experiment=bi_soup's recipe: stages bi_cosine_3ep and bi_cosent_3ep."""
    from sts.training.recipe import stage_config

    defaults = compose_train([], tmp_path)
    assert list(defaults.soup.ingredients) == list(defaults.stages) == ["cosine", "cosent"]
    for name, experiment in zip(defaults.stages, ("bi_cosine_3ep", "bi_cosent_3ep")):
        stage = stage_config(defaults, name, defaults.stages[name], tmp_path / "stage")
        assert _recipe(stage) == _recipe(compose_train([f"experiment={experiment}"], tmp_path))
    assert compose_train(["experiment=bi_soup"], tmp_path).soup.grid_step == defaults.soup.grid_step


def test_single_model_experiments_and_the_cross_encoder_turn_the_soup_off(tmp_path: Path) -> None:
    assert not compose_train(["model=cross_encoder"], tmp_path).soup.ingredients
    for experiment in options("experiment"):
        cfg = compose_train([f"experiment={experiment}"], tmp_path)
        assert bool(cfg.soup.ingredients) == experiment.endswith("_soup"), experiment


def test_a_bad_api_key_is_refused_without_showing_it() -> None:
    from sts.config import options as rules

    for key in ("short", "has a space in it", "ünïcode-key-123"):
        cfg = compose_config("serve", [])
        cfg.api_key = key
        with pytest.raises(STSError) as e:
            rules.check(cfg, rules.SERVE)
        assert "option api_key=<hidden> must be 8 to 4096 visible ASCII" in str(e.value) and key not in str(e.value)
    rules.check(compose_config("serve", ["api_key=good-key-1234"]), rules.SERVE)


@pytest.mark.parametrize("command", ["predict", "evaluate", "embed", "mine", "serve", "augment"])
def test_every_scoring_command_takes_long_inputs_and_checks_them(command: str) -> None:
    """long_inputs and the chunk_* options reach sts.load from every scoring command's config, and
    a bad value is one line naming the option before anything runs."""
    from sts.config import options as rules
    from sts.config import scoring_settings
    from sts.core.windows import LongInputs

    table = {"predict": rules.PREDICT, "evaluate": rules.EVALUATE, "embed": rules.EMBED, "mine": rules.MINE, "serve": rules.SERVE, "augment": rules.AUGMENT}[command]
    assert scoring_settings(compose_config(command, []))["long_inputs"] == LongInputs()
    cfg = compose_config(command, ["long_inputs=chunk", "chunk_overlap=8", "chunk_reduce=mean", "chunk_max_windows=64"])
    assert scoring_settings(cfg)["long_inputs"] == LongInputs("chunk", 8, "mean", 64)
    checked = {key: table[key] for key in ("long_inputs", "chunk_overlap", "chunk_reduce", "chunk_max_windows")}
    rules.check(cfg, checked)
    with pytest.raises(STSError, match=r"^option chunk_max_windows=0 must be an integer in \[1, 10000000\]$"):
        rules.check(compose_config(command, ["chunk_max_windows=0"]), checked)


@pytest.mark.parametrize("command", ["predict", "evaluate", "embed", "mine", "serve", "augment"])
def test_every_scoring_command_takes_pad_to_multiple_of(command: str) -> None:
    """pad_to_multiple_of reaches sts.load from every scoring command: 1 by default (padding to a
    batch's longest input), 8 for serve.py, and a value below 1 is one line naming the option."""
    from sts.config import options as rules
    from sts.config import scoring_settings

    table = {"predict": rules.PREDICT, "evaluate": rules.EVALUATE, "embed": rules.EMBED, "mine": rules.MINE, "serve": rules.SERVE, "augment": rules.AUGMENT}[command]
    assert scoring_settings(compose_config(command, []))["pad_to_multiple_of"] == (8 if command == "serve" else 1)
    assert scoring_settings(compose_config(command, ["pad_to_multiple_of=16"]))["pad_to_multiple_of"] == 16
    with pytest.raises(STSError, match=r"^option pad_to_multiple_of=0 must be an integer in \[1, 4096\]$"):
        rules.check(compose_config(command, ["pad_to_multiple_of=0"]), {"pad_to_multiple_of": table["pad_to_multiple_of"]})
