"""Recipes in stages: a run that first trains, labels or mixes what it starts from.

A recipe is an experiment config (sts/conf/experiment/<name>.yaml). Its `stages` run in order, each
in <run>/stages/<name>/, before the run's own step (a training, or a soup when
`soup.ingredients` names models); each stage's output feeds later ones as declared:

    stages:
      sick:    {recipe: cross_llrd, overrides: [data=sick]}             # another recipe, trained
      ema:     {recipe: cross_llrd, patch: {encoder: {dropout: 0.0}}}  # ... with fields changed
      teacher: {recipe: bi_soup}                                        # its own stages included
      silver:  {label: teacher, overrides: ["ranks=[2,20]"]}            # augment.py's silver pairs
      distil:  {recipe: cross_llrd, inputs: {encoder: sick, train: [silver]}}
      cosine:  {patch: {loss: {_target_: sts.training.losses.CosineMSELoss}}}  # this config, patched
    inputs: {encoder: distil}       # the run's own step starts from stage distil's encoder
    soup: {ingredients: [cosine, ...]}  # or: its own step mixes these stages' models on dev

A stage already finished with the same resolved configuration (its stage.yaml) is skipped, an
interrupted one resumes from its last checkpoint, and one whose folder holds another
configuration's work is refused: stages are data the recipe names, never guessed.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from sts.errors import STSError

log = logging.getLogger(__name__)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
KINDS = ("recipe", "patch", "label")
FIELDS = {"recipe", "patch", "label", "overrides", "inputs"}
# what a recipe's configuration is, for telling a finished stage from another one: not where it writes
NOT_RECIPE = ("paths", "model_file", "ckpt_path", "out", "overwrite")


@dataclass
class Output:
    """What a finished stage left in its folder: a model file (training) or silver pairs (label)."""

    folder: Path
    model: Path | None
    silver: Path | None
    seconds: float
    encoder: str | None


def run_recipe(cfg: DictConfig, grown_from: str | None = None) -> dict[str, float]:
    """Run cfg's stages in order, then its own step (a soup if `soup.ingredients` is set, else a
    training). `grown_from` names the pretrained checkpoint behind an encoder a parent recipe's
    stage handed in (for results.csv's encoder column). Returns the own step's dev and test metrics."""
    from sts.config import options
    from sts.training.soup import cook_soup
    from sts.training.fit import check_run_dir, train

    options.check(cfg, options.TRAIN)  # a wrong value fails now, not after an hour of stages
    output_dir = Path(cfg.paths.output_dir)  # resolved once: stage configs are composed below
    check_run_dir(output_dir, cfg.ckpt_path, bool(cfg.get("overwrite", False)))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    stages = stage_specs(cfg)
    if (cfg.get("soup") or {}).get("ingredients") and cfg.ckpt_path not in (None, "", "last"):
        raise STSError("ckpt_path: a soup is not resumed from a checkpoint; its stages resume by themselves (ckpt_path=last or none)")
    done: dict[str, Output] = {}
    for name, spec in stages.items():
        done[name] = run_stage(cfg, name, spec, output_dir / "stages" / name, done)
    own = own_step(cfg, done)
    ingredients = [str(i) for i in (cfg.get("soup") or {}).get("ingredients") or []]
    files = [str(model_of(done, i, "soup.ingredients")) if NAME.match(i) else i for i in ingredients]
    earlier: dict[str, Any] = {"encoder": grown_from} if grown_from else {}
    if done:
        counted = {i for i in ingredients if i in done}  # a soup counts its ingredients' seconds itself
        earlier |= {
            "stages": {name: {"kind": kind_of(stages[name]), **OmegaConf.to_container(stages[name], resolve=True), "train_seconds": round(out.seconds, 1)} for name, out in done.items()},
            "stage_seconds": sum(out.seconds for name, out in done.items() if name not in counted),
        }
        source = own_encoder(cfg, done)
        if source:
            earlier["encoder"] = source
    return cook_soup(own, files, earlier) if files else train(own, earlier)


def stage_specs(cfg: DictConfig) -> dict[str, DictConfig]:
    """cfg.stages checked: names, one kind each, known fields, inputs naming earlier stages."""
    stages = cfg.get("stages")
    if not stages:
        check_inputs(cfg.get("inputs"), [], "inputs")
        return {}
    if not isinstance(stages, DictConfig):
        raise STSError("stages: must be a mapping of stage names to stages")
    seen: list[str] = []
    for name, spec in stages.items():
        where = f"stages.{name}"
        if not NAME.match(str(name)):
            raise STSError(f"{where}: a stage name must be letters, digits and _ (not starting with a digit)")
        if not isinstance(spec, DictConfig):
            raise STSError(f"{where}: must be a mapping with one of {', '.join(KINDS)}")
        unknown = sorted(set(spec) - FIELDS)
        if unknown:
            raise STSError(f"{where}: unknown field(s) {unknown}; a stage takes {sorted(FIELDS)}")
        given = [k for k in KINDS if spec.get(k) is not None]
        if not given or ("label" in given and len(given) > 1):
            raise STSError(f"{where}: needs a recipe (optionally with a patch), a patch, or a label; got {given or 'none'}")
        if spec.get("patch") is not None and not isinstance(spec.patch, DictConfig):
            raise STSError(f"{where}.patch: must be a mapping of config fields")
        if given == ["label"]:
            for teacher in teachers_of(spec):
                need_earlier(teacher, seen, f"{where}.label")
        check_inputs(spec.get("inputs"), seen, f"{where}.inputs")
        seen.append(str(name))
    check_inputs(cfg.get("inputs"), seen, "inputs")
    return dict(stages.items())


def check_inputs(inputs: Any, seen: list[str], where: str) -> None:
    if inputs is None:
        return
    if not isinstance(inputs, DictConfig) or set(inputs) - {"encoder", "train"}:
        raise STSError(f"{where}: must be a mapping with encoder (a stage) and/or train (stages or files)")
    if inputs.get("encoder") is not None:
        need_earlier(str(inputs.encoder), seen, f"{where}.encoder")
    for item in listed(inputs.get("train")):
        if NAME.match(item):
            need_earlier(item, seen, f"{where}.train")


def need_earlier(name: str, seen: list[str], where: str) -> None:
    if name not in seen:
        raise STSError(f"{where}: {name!r} is not an earlier stage (earlier: {seen or 'none'})")


def listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, ListConfig)) else [str(value)]


def teachers_of(spec: DictConfig) -> list[str]:
    return listed(spec.label)


def kind_of(spec: DictConfig) -> str:
    """label, recipe (another recipe, maybe patched) or patch (this config patched)."""
    return next(k for k in KINDS if spec.get(k) is not None)


def run_stage(cfg: DictConfig, name: str, spec: DictConfig, folder: Path, done: dict[str, Output]) -> Output:
    """One stage into `folder`, skipped when already finished with the same configuration."""
    if kind_of(spec) == "label":
        return label_stage(cfg, name, spec, folder, done)
    sub = stage_config(cfg, name, spec, folder)
    for key in ("encoder", "train"):
        if (spec.get("inputs") or {}).get(key) is not None and (sub.get("inputs") or {}).get(key) is not None:
            raise STSError(f"stages.{name}.inputs.{key}: recipe {spec.get('recipe')} takes its {key} from its own stage {sub.inputs[key]}")
    apply_inputs(sub, spec.get("inputs"), done, f"stages.{name}.inputs")
    metrics = folder / "metrics.json"
    record = claim(folder, name, sub)
    if metrics.is_file() and Path(sub.model_file).is_file():
        log.info("stage %s: already trained in %s", name, folder)
    else:
        record()
        with open_dict(sub):
            sub.ckpt_path = "last" if (folder / "checkpoints" / "last.ckpt").is_file() else None
            sub.overwrite = True  # claim() matched the folder's stage.yaml: what is there is this stage's own earlier try
        print(f"stage {name}: {describe(spec)} -> {folder}")
        encoder = (spec.get("inputs") or {}).get("encoder")
        run_recipe(sub, done[str(encoder)].encoder if encoder is not None else None)
    result = json.loads(metrics.read_text())
    return Output(folder, Path(sub.model_file), None, float(result["metrics"]["train_seconds"]), result.get("encoder"))


def stage_config(cfg: DictConfig, name: str, spec: DictConfig, folder: Path) -> DictConfig:
    """A training stage's config: another recipe composed with the stage's overrides (and
    cfg.stage_overrides.train), or this run's config with `patch` applied; seed from cfg."""
    from sts.config import compose

    where = f"stages.{name}"
    if spec.get("recipe") is not None:
        overrides = [f"experiment={spec.recipe}", f"seed={cfg.seed}", *listed(spec.get("overrides")), *listed((cfg.get("stage_overrides") or {}).get("train"))]
        try:
            sub = compose("train", overrides, folder)
        except (HydraException, OmegaConfBaseException) as e:  # an unknown recipe, a malformed override
            raise STSError(f"{where}: cannot compose recipe {spec.recipe!r} with {overrides[2:]}: {str(e).splitlines()[0]}") from None
        with open_dict(sub):
            sub.stage_overrides = cfg.get("stage_overrides") or {}
        return patched(sub, spec.patch, where) if spec.get("patch") is not None else sub
    if spec.get("overrides"):
        raise STSError(f"{where}: overrides go with recipe (or label); a patch stage is this config with `patch` applied")
    sub = patched(cfg, spec.patch, where)
    with open_dict(sub):
        sub.stages, sub.inputs = {}, {"encoder": None, "train": None}
        sub.soup = {"ingredients": [], "grid_step": cfg.soup.grid_step}
        sub.paths.output_dir = str(folder)
        sub.model_file = str(folder / "model.pt")
    return sub


def patched(cfg: DictConfig, patch: Any, where: str) -> DictConfig:
    """A copy of cfg with `patch` applied: a node with _target_ replaces the node, others merge."""
    import copy

    def apply(node: Any, value: Any, at: str) -> Any:
        if not isinstance(value, DictConfig) or not isinstance(node, DictConfig) or "_target_" in value:
            return value
        for key, item in value.items():
            if key not in node:
                raise STSError(f"{where}.patch: {at}{key} is not a config field")
            node[key] = apply(node[key], item, f"{at}{key}.")
        return node

    return apply(copy.deepcopy(cfg), patch, "")


def apply_inputs(sub: DictConfig, inputs: Any, done: dict[str, Output], where: str) -> None:
    """Point `sub` at earlier stages' outputs: an encoder (exported once as a transformers
    folder) and training files (a stage's silver pairs, or a file as named)."""
    if not inputs:
        return
    with open_dict(sub):
        if inputs.get("encoder") is not None:
            sub.encoder.name_or_path = str(encoder_of(done[str(inputs.encoder)], f"{where}.encoder"))
        if inputs.get("train") is not None:
            files = [str(silver_of(done, t, f"{where}.train")) if NAME.match(t) else t for t in listed(inputs.train)]
            sub.data.train = files[0] if len(files) == 1 else files


def own_step(cfg: DictConfig, done: dict[str, Output]) -> DictConfig:
    """cfg for its own step, pointed at the stages its `inputs` name."""
    import copy

    own = copy.deepcopy(cfg)
    apply_inputs(own, cfg.get("inputs"), done, "inputs")
    with open_dict(own):
        own.stages = {}
        if done and own.ckpt_path == "last" and not (Path(own.paths.output_dir) / "checkpoints" / "last.ckpt").is_file():
            own.ckpt_path = None  # the interruption came in a stage (resumed above): this step had not started
    return own


def own_encoder(cfg: DictConfig, done: dict[str, Output]) -> str | None:
    """The pretrained checkpoint at the root of the run's chain of stages (for results.csv)."""
    inputs = cfg.get("inputs") or {}
    if inputs.get("encoder") is not None:
        return done[str(inputs.encoder)].encoder
    return None


def encoder_of(out: Output, where: str) -> Path:
    from sts.io.export import export

    if out.model is None:
        raise STSError(f"{where}: stage {out.folder.name} made silver pairs, not a model")
    folder = out.folder / "encoder"
    if not (folder / "config.json").is_file():
        export(out.model, "hf", folder, overwrite=True)
    return folder


def model_of(done: dict[str, Output], name: str, where: str) -> Path:
    if name not in done:
        raise STSError(f"{where}: {name!r} is not a stage of this recipe (stages: {list(done) or 'none'})")
    if done[name].model is None:
        raise STSError(f"{where}: stage {name} made silver pairs, not a model")
    return done[name].model


def silver_of(done: dict[str, Output], name: str, where: str) -> Path:
    if done[name].silver is None:
        raise STSError(f"{where}: stage {name} trained a model, not silver pairs")
    return done[name].silver


def label_stage(cfg: DictConfig, name: str, spec: DictConfig, folder: Path, done: dict[str, Output]) -> Output:
    """Silver pairs (augment.py) labelled by earlier stages' models into <folder>/silver.tsv."""
    from sts.training.augmentation import augment
    from sts.config import compose

    where = f"stages.{name}"
    if spec.get("inputs"):
        raise STSError(f"{where}.inputs: a label stage takes its teachers in `label`")
    teachers = [str(model_of(done, t, f"{where}.label")) for t in teachers_of(spec)]
    out = folder / "silver.tsv"
    overrides = [*listed(spec.get("overrides")), *listed((cfg.get("stage_overrides") or {}).get("augment")), f"seed={cfg.seed}"]
    try:
        sub = compose("augment", [*overrides, f"out={out}"])
    except (HydraException, OmegaConfBaseException) as e:
        raise STSError(f"{where}: cannot compose augment.py's config with {overrides}: {str(e).splitlines()[0]}") from None
    with open_dict(sub):
        sub.teacher = teachers[0] if len(teachers) == 1 else teachers
    record = claim(folder, name, sub)
    if out.is_file() and (folder / "stage.yaml").is_file():
        log.info("stage %s: silver pairs already in %s", name, out)
    else:
        record()
        print(f"stage {name}: {describe(spec)} -> {out}")
        started = time.perf_counter()
        with open_dict(sub):
            sub.overwrite = True  # this stage's own file: an interrupted write left none (atomic)
        augment(sub)
        log.info("stage %s: %.0f s", name, time.perf_counter() - started)
    return Output(folder, None, out, 0.0, None)


def claim(folder: Path, name: str, sub: DictConfig) -> Callable[[], None]:
    """Refuse a stage folder that holds another configuration's work; returns what records this
    stage's configuration there (its stage.yaml) once it is about to run."""
    record, recipe = folder / "stage.yaml", recipe_text(sub)
    if record.is_file() and record.read_text() != recipe:
        raise STSError(f"{folder}: holds stage {name} of another configuration; use another hydra.run.dir (or delete that folder)")

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        record.write_text(recipe)

    return write


def recipe_text(sub: DictConfig) -> str:
    """A stage's resolved configuration, less where it writes: equal text, same stage."""
    try:
        resolved = OmegaConf.to_container(sub, resolve=True)
    except OmegaConfBaseException as e:
        raise STSError(f"stage config does not resolve: {e}") from None
    return OmegaConf.to_yaml({k: v for k, v in resolved.items() if k not in NOT_RECIPE})


def describe(spec: DictConfig) -> str:
    kind = kind_of(spec)
    if kind == "label":
        what = f"silver pairs labelled by {', '.join(teachers_of(spec))}"
    else:
        what = f"recipe {spec.recipe}" if kind == "recipe" else "this config"
        if spec.get("patch"):
            what += f" patched with {OmegaConf.to_container(spec.patch)}"
    extra = " ".join(listed(spec.get("overrides")))
    return what + (f" {extra}" if extra else "")
