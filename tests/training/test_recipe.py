"""Recipes in stages (sts/training/recipe.py): every recipe in sts/conf/experiment runs end to end on the tiny
encoder (teachers and silver pairs included), stages feed each other as declared, finished ones
are reused and interrupted ones resumed, and a malformed stage is one clear error."""
import json
from pathlib import Path

import pytest

from sts.training import fit as training
from sts.config import CONFIG_DIR
from sts.errors import STSError
from sts.training.recipe import run_recipe

from conftest import TINY_TRAINER, compose_train

RECIPES = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
# TINY_TRAINER less soup=none: a recipe's soup (bi_soup, the default) is part of what is tested
SMOKE = [o for o in TINY_TRAINER if o != "soup=none"]


def smoke_cfg(tiny_encoder: str, out: Path, *overrides: str, every_stage_too: tuple[str, ...] = (), augment: tuple[str, ...] = ("batch_size=256",)):
    """A recipe on the tiny encoder for a few steps, every stage (and stage of a stage) too."""
    tiny = [*SMOKE, f"encoder.name_or_path={tiny_encoder}", "logger=none", *every_stage_too]
    every_stage = ",".join(repr(o) for o in tiny)
    return compose_train([f"stage_overrides.train=[{every_stage}]", f"stage_overrides.augment=[{','.join(repr(o) for o in augment)}]", *tiny, *overrides], out)


# each training sentence with its nearest neighbour only: every silver stage and its student run
# whole on a third to a sixth of the recipe's pairs (labelling and tokenising them was most of
# these tests' time); test_stages_feed_each_other_as_declared keeps a recipe's own ranks
FEW_SILVER = ("batch_size=256", "ranks=[1]", "random_partners=0")


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_runs_end_to_end_on_the_tiny_encoder(recipe: str, tiny_encoder: str, tmp_path: Path) -> None:
    cfg = smoke_cfg(tiny_encoder, tmp_path / "run", f"experiment={recipe}", augment=FEW_SILVER)
    metrics = run_recipe(cfg)
    out = Path(cfg.paths.output_dir)
    record = json.loads((out / "metrics.json").read_text())
    assert (out / "model.pt").is_file() and 0 <= metrics["train_seconds"] and "test/spearman" in metrics
    assert record["experiment"] == recipe and record["encoder"] == Path(tiny_encoder).name
    assert list(record.get("stages", {})) == list(cfg.stages)
    for name, spec in cfg.stages.items():
        made = out / "stages" / name / ("silver.tsv" if spec.get("label") else "model.pt")
        assert made.is_file(), made
    if cfg.stages:  # the stages' training time counts in the recipe's
        assert metrics["train_seconds"] >= sum(s["train_seconds"] for s in record["stages"].values()) - 1e-6


def test_stages_feed_each_other_as_declared(tiny_encoder: str, tmp_path: Path) -> None:
    cfg = smoke_cfg(tiny_encoder, tmp_path / "run", "experiment=cross_distil")
    run_recipe(cfg)
    stages = Path(cfg.paths.output_dir) / "stages"
    distil = compose_yaml(stages / "distil" / "stage.yaml")
    assert distil["encoder"]["name_or_path"] == str(stages / "msrp" / "encoder")
    assert distil["data"]["train"] == str(stages / "silver" / "silver.tsv")
    assert compose_yaml(stages / "msrp" / "stage.yaml")["encoder"]["name_or_path"] == str(stages / "sick" / "encoder")
    silver = compose_yaml(stages / "silver" / "stage.yaml")
    assert silver["teacher"] == str(stages / "teacher" / "model.pt") and list(silver["ranks"]) == [2, 20] and silver["random_partners"] == 1
    assert (stages / "teacher" / "stages" / "cosent" / "model.pt").is_file()  # the teacher is a recipe with its own stages
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["data"] == "stsb"


def compose_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_an_interrupted_stage_resumes_and_a_finished_one_is_reused(tiny_encoder: str, tmp_path: Path, monkeypatch) -> None:
    one_epoch = ("trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.limit_train_batches=3")  # validated, so last.ckpt is written
    cfg = smoke_cfg(tiny_encoder, tmp_path / "run", "experiment=cross_from_sick", every_stage_too=one_epoch)
    run_recipe(cfg)
    sick = Path(cfg.paths.output_dir) / "stages" / "sick"
    assert (sick / "checkpoints" / "last.ckpt").is_file()  # keep_checkpoints=true in the smoke settings
    (sick / "metrics.json").unlink()  # as if interrupted before it finished
    resumed = []
    real_fit = training.fit
    monkeypatch.setattr(training, "fit", lambda trainer, model, dm, ckpt, out: (resumed.append((Path(out).name, ckpt)), real_fit(trainer, model, dm, ckpt, out))[1])
    # the run's own step had finished too: running again into its folder takes overwrite=true
    run_recipe(smoke_cfg(tiny_encoder, tmp_path / "run", "experiment=cross_from_sick", "overwrite=true", every_stage_too=one_epoch))
    assert resumed[0] == ("sick", str(sick / "checkpoints" / "last.ckpt"))
    resumed.clear()
    trained_at = (sick / "model.pt").stat().st_mtime_ns
    run_recipe(smoke_cfg(tiny_encoder, tmp_path / "run", "experiment=cross_from_sick", "overwrite=true", every_stage_too=one_epoch))
    assert [name for name, _ in resumed] == ["run"] and (sick / "model.pt").stat().st_mtime_ns == trained_at


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+stages.a={recipee:bi_cosine_3ep}"], r"stages.a: unknown field\(s\) \['recipee'\]"),
        (["+stages.a={overrides:['data=sick']}"], "stages.a: needs a recipe"),
        (["+stages.a={recipe:bi_cosine_3ep,label:b}"], "stages.a: needs a recipe"),
        (["+stages.a-b={recipe:bi_cosine_3ep}"], "stages.a-b: a stage name must be"),
        (["+stages.a={recipe:bi_cosine_3ep,inputs:{encoder:b}}", "+stages.b={recipe:bi_cosine_3ep}"], r"stages.a.inputs.encoder: 'b' is not an earlier stage \(earlier: none\)"),
        (["+stages.a={label:a}"], "stages.a.label: 'a' is not an earlier stage"),
        (["inputs.train=[nope]"], "inputs.train: 'nope' is not an earlier stage"),
        (["+stages.a={recipe:no_such_recipe}"], "stages.a: cannot compose recipe 'no_such_recipe'"),
        (["+stages.a={patch:{model:{encoder_lrr:1}}}"], r"stages.a.patch: model.encoder_lrr is not a config field"),
        (["+stages.a={patch:{},overrides:['x=1']}"], "stages.a: overrides go with recipe"),
        (["+stages.a={recipe:cross_from_sick,inputs:{encoder:b}}"], "'b' is not an earlier stage"),
    ],
)
def test_a_malformed_stage_is_one_clear_error_before_anything_trains(overrides: list[str], message: str, tiny_encoder: str, tmp_path: Path) -> None:
    with pytest.raises(STSError, match=message):
        run_recipe(smoke_cfg(tiny_encoder, tmp_path / "run", "soup=none", *overrides))
    assert not list(tmp_path.glob("run/**/model.pt"))


def test_a_stage_cannot_take_an_input_its_recipe_takes_from_its_own_stage(tiny_encoder: str, tmp_path: Path) -> None:
    cfg = smoke_cfg(tiny_encoder, tmp_path / "run", "soup=none", "+stages.bi={recipe:bi_cosine_3ep}", "+stages.x={recipe:cross_from_sick,inputs:{encoder:bi}}")
    with pytest.raises(STSError, match="stages.x.inputs.encoder: recipe cross_from_sick takes its encoder from its own stage sick"):
        run_recipe(cfg)


def test_outputs_are_used_as_what_they_are(tiny_encoder: str, tmp_path: Path) -> None:
    cfg = smoke_cfg(tiny_encoder, tmp_path / "run", "experiment=bi_augsbert", "soup.ingredients=[silver,cosine]")
    with pytest.raises(STSError, match="soup.ingredients: stage silver made silver pairs, not a model"):
        run_recipe(cfg)
    cfg = smoke_cfg(tiny_encoder, tmp_path / "run", "experiment=bi_augsbert", "inputs.train=[cosine]")
    with pytest.raises(STSError, match="inputs.train: stage cosine trained a model, not silver pairs"):
        run_recipe(cfg)
