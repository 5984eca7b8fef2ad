"""train(cfg): build model, data, trainer from a composed config; fit, pick the threshold on dev,
test, and write a self-contained model file. Called by train.py and by tests."""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, WeightAveraging
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from sts.io import checkpoint

from sts.training import console

from sts.config import options

from sts.core import provenance
from sts.io.bundled import NAME as BUNDLED_NAME
from sts.data.tables import check_apart, marker_content, writable_dir
from sts.errors import Interrupted, STSError
from sts.core import PairModel, hparams
from sts.training.dropout import use_packed_dropout
from sts.training.resume import InterruptCheckpoint, check_resumable
from sts.training.task import PairTask
from sts.io.encoders import check_source, load_pretrained, resolve, sentence_transformers_pooling
from sts.training.sweeps import isolate_multirun_job
from sts.data.terminal import format_table

log = logging.getLogger(__name__)
MIN_FREE_BYTES = 500 * 2**20


def build_task(cfg: DictConfig, model: PairModel) -> PairTask:
    """`model` in the training task: the configured loss, and cfg.model's training keys
    (sts.core.hparams.TRAINING; the others built the model)."""
    _, training = hparams.split(OmegaConf.to_container(cfg.model, resolve=True))
    return PairTask(model, loss=instantiate(cfg.loss), **training)


def build_model(cfg: DictConfig) -> PairModel:
    """The configured model (cfg.model's architecture keys) around the configured pretrained encoder."""
    tokenizer, encoder = load_pretrained(cfg.encoder.name_or_path, cfg.encoder.get("dropout"))
    if cfg.encoder.get("packed_dropout", False):
        use_packed_dropout(encoder)
    architecture, _ = hparams.split(OmegaConf.to_container(cfg.model, resolve=True))
    if "pooling" in architecture and architecture["pooling"] is None:
        architecture["pooling"] = sentence_transformers_pooling(cfg.encoder.name_or_path) or "mean"
    return instantiate(architecture, encoder=encoder, tokenizer=tokenizer)


def check_output_dir(path: str | Path) -> Path:
    """Fail before any training when the run directory cannot take checkpoints."""
    path = Path(path)
    try:
        writable_dir(path)
    except OSError as e:
        raise STSError(f"{path}: output directory is not writable ({e.strerror})") from None
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        raise STSError(f"{path}: only {free / 2**20:.0f} MiB free on its disk; at least {MIN_FREE_BYTES / 2**20:.0f} MiB are needed for checkpoints")
    return path


# what a run writes into its directory, and the marker that says train.py made that directory
RUN_OUTPUTS = ("model.pt", "metrics.json", "checkpoints", "csv")
RUN_MARKER = ".sts-run.json"


def _resumes(folder: Path, ckpt_path: str | None) -> bool:
    """Whether ckpt_path continues the run in `folder` (last, or a checkpoint of its own)."""
    if ckpt_path in (None, ""):
        return False
    return ckpt_path == "last" or Path(ckpt_path).resolve().parent == (folder / "checkpoints").resolve()


def check_run_dir(folder: Path, ckpt_path: str | None, overwrite: bool) -> None:
    """Refuse a run directory that holds another run's outputs, which this run would replace or
    delete: allowed when resuming that run, or with overwrite=true in a folder train.py wrote
    (its marker, checked by content). Only global rank zero checks (other ranks run in its folder)."""
    if getattr(rank_zero_only, "rank", 0) != 0 or _resumes(folder, ckpt_path):
        return
    found = [name for name in RUN_OUTPUTS if (folder / name).exists()]
    if not found:
        return
    if not overwrite:
        raise STSError(f"{folder}: holds an earlier run's {', '.join(found)}; resume it with ckpt_path=last, pick a new hydra.run.dir, or pass overwrite=true to replace that run")
    marker = marker_content(folder / RUN_MARKER)
    if marker is None or marker.get("written_by") != "train.py":
        raise STSError(f"{folder}: overwrite=true only replaces a run directory train.py wrote (with its {RUN_MARKER}); this one holds {', '.join(found)} and is left alone")


def claim_run_dir(cfg: DictConfig, output_dir: Path) -> None:
    """Before any training: the run directory is this run's (`check_run_dir`), its outputs touch
    none of its inputs, and its marker says train.py wrote it. A recipe's stages and this run's
    own checkpoints are its own earlier work, not inputs to protect."""
    data = {f"data.{s}": OmegaConf.select(cfg.data, s, default=None, throw_on_missing=False) for s in ("train", "val", "test")}
    ckpt = None if cfg.ckpt_path == "last" else cfg.ckpt_path
    inputs = {"encoder.name_or_path": cfg.encoder.name_or_path, "ckpt_path": ckpt, **data}
    check_apart({"hydra.run.dir": output_dir, "model_file": cfg.model_file}, inputs, own=[output_dir / "stages", output_dir / "checkpoints"])
    overwrite = bool(cfg.get("overwrite", False))
    check_run_dir(output_dir, cfg.ckpt_path, overwrite)
    model_file = Path(cfg.model_file)
    if model_file.exists() and not (overwrite or _resumes(output_dir, cfg.ckpt_path)):
        raise STSError(f"model_file={model_file}: already exists; pass overwrite=true to replace it (or resume its run with ckpt_path=last)")
    if getattr(rank_zero_only, "rank", 0) == 0:
        (output_dir / RUN_MARKER).write_text(json.dumps({"written_by": "train.py", "task": cfg.task_name}) + "\n")


def _resume_path(cfg: DictConfig, output_dir: Path, task: PairTask) -> str | None:
    if cfg.ckpt_path in (None, ""):
        return None
    if cfg.ckpt_path == "last":
        last = output_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise STSError(f"ckpt_path=last: no {last} to resume from (run with hydra.run.dir=<the interrupted run's directory>)")
        return check_resumable(last, task)
    if not Path(cfg.ckpt_path).is_file():
        raise STSError(f"ckpt_path: {cfg.ckpt_path} not found")
    return check_resumable(cfg.ckpt_path, task)


def fit(trainer: L.Trainer, model: PairTask, datamodule: Any, ckpt_path: str | None, output_dir: Path) -> None:
    """`trainer.fit`, with an interruption made loud: Lightning turns SIGTERM into a bare
    SystemExit (exit 0, nothing said) and Ctrl-C into exit 1. Either becomes `Interrupted`,
    which names the checkpoint to resume from (SIGTERM stops at a batch boundary and
    `InterruptCheckpoint` saves last.ckpt there; after Ctrl-C the last validation's is kept)."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except STSError:
        raise
    except Exception as e:
        # `check_resumable` vetted the file's fields; whatever else in its training state does not
        # fit surfaces while Lightning restores it or at the first step after: before the run has
        # stepped past the checkpoint, it is the file's fault, said in one line
        resumed_at = _step_of(Path(ckpt_path)) if ckpt_path else None
        if ckpt_path is None or (resumed_at is not None and trainer.global_step > resumed_at):
            raise
        raise STSError(f"{ckpt_path}: cannot resume from it: its training state does not fit this run ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    except (SystemExit, KeyboardInterrupt) as e:
        if isinstance(e, SystemExit) and not (trainer.interrupted or trainer.received_sigterm):
            raise
        last = output_dir / "checkpoints" / "last.ckpt"
        how = "SIGTERM" if trainer.received_sigterm else "Ctrl-C"
        resume = (
            f"resume with the same command plus hydra.run.dir={output_dir} ckpt_path=last ({last} is at step {_step_of(last)})"
            if last.is_file()
            else f"no checkpoint was written yet; run the same command again (plus overwrite=true to reuse {output_dir})"
        )
        raise Interrupted(f"training interrupted ({how}) at step {trainer.global_step}: {resume}") from None


def _step_of(path: Path) -> int | None:
    """The optimizer step a Lightning checkpoint was written at (None if unreadable)."""
    try:
        step = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step")
    except Exception:  # only for messages and the resume check above: an unreadable file is reported on resume
        return None
    return step if isinstance(step, int) else None


def build_trainer(cfg: DictConfig) -> L.Trainer:
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if not loggers:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def prepare(cfg: DictConfig) -> tuple[Path, Any]:
    """What every step that ends in a model file does first: options checked, the run directory
    checked, seeds set, and the data read and validated before any model loads (a bad file fails
    in a second). Returns the run directory and the read data module."""
    options.check(cfg, options.TRAIN)
    console.quiet_lightning()
    isolate_multirun_job()
    output_dir = check_output_dir(cfg.paths.output_dir)
    check_source(resolve(cfg.encoder.name_or_path))  # a folder naming code to run fails before anything is written
    claim_run_dir(cfg, output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    datamodule.read()
    if not datamodule.has_split("val"):
        raise STSError(f"data={cfg.data.name}: a dev split is needed for model selection (set data.val=PATH or data.val_fraction)")
    return output_dir, datamodule


def start_trainer(cfg: DictConfig, task: PairTask, datamodule: Any) -> L.Trainer:
    """The configured trainer, with the data set up for how the model reads text and the config logged."""
    model = task.model
    datamodule.attach(model.inputs, both_orders=bool(getattr(model, "both_orders", False)), ranks_within_batch=bool(getattr(task.loss_fn, "ranks_within_batch", False)))
    trainer = build_trainer(cfg)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer


def train(cfg: DictConfig, earlier: dict[str, Any] | None = None) -> dict[str, float]:
    """Fit one model (none if cfg.train is false: the encoder as it is), choose the threshold on dev
    with the best weights, test, save `cfg.model_file`. `earlier` is what the recipe's stages
    before this step recorded (sts/training/recipe.py). Returns {"val/spearman": ..., ...}."""
    if cfg.get("stages") or (cfg.get("soup") or {}).get("ingredients"):
        raise STSError("this config has stages or a soup: run it with sts.training.recipe.run_recipe (train.py does)")
    output_dir, datamodule = prepare(cfg)
    model = build_task(cfg, build_model(cfg))
    trainer = start_trainer(cfg, model, datamodule)
    started = time.perf_counter()
    best = None
    if cfg.train:
        fit(trainer, model, datamodule, _resume_path(cfg, output_dir, model), output_dir)
        ckpt_cb = trainer.checkpoint_callback
        best = selected_checkpoint(ckpt_cb.best_model_path if isinstance(ckpt_cb, ModelCheckpoint) else None, output_dir)
        use_selected_weights(trainer, model, best)
    train_seconds = time.perf_counter() - started
    metrics = finish(cfg, model, trainer, datamodule, train_seconds, OmegaConf.to_container(cfg.model, resolve=True), earlier or {})
    if trainer.is_global_zero:
        if cfg.train and not cfg.keep_checkpoints:
            freed = remove_checkpoints(trainer)
            if freed:
                print(f"removed this run's Lightning checkpoints ({freed / 2**20:.0f} MiB; keep_checkpoints=true keeps them)")
        elif best:
            print(f"best Lightning checkpoint: {best}")
    return metrics


def finish(
    cfg: DictConfig, model: PairTask, trainer: L.Trainer, datamodule: Any, train_seconds: float, config: Any, record: dict[str, Any]
) -> dict[str, float]:
    """Choose the threshold on dev with the weights now in `model`, test, and (on rank 0) write the
    model file and metrics.json. `record` adds to (or replaces) fields of metrics.json; its
    `stage_seconds` count in train_seconds. Returns dev and test metrics."""
    trainer.validate(model, datamodule=datamodule, verbose=False)
    metrics = {f"val/{k}": v for k, v in model.last_metrics["val"].items()}
    if datamodule.has_split("test"):
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics |= {f"test/{k}": v for k, v in model.last_metrics["test"].items()}
    metrics["train_seconds"] = train_seconds + float(record.get("stage_seconds", 0.0))
    if trainer.is_global_zero:
        run = run_record(cfg, model, trainer, record)
        model_file = checkpoint.save(model.model, cfg.model_file, metrics | {"data": cfg.data.name, "config": config, "run": run}, model.training_hparams)
        write_record(cfg, model, trainer, metrics, Path(cfg.paths.output_dir) / "metrics.json", record)
        print(format_table(summary_rows(metrics), title=f"{type(model.model).__name__} on {cfg.data.name} (x100)"))
        print(f"model: {model_file}")
    return metrics


def written_checkpoints(trainer: L.Trainer) -> set[Path]:
    """The checkpoint files this run's callbacks recorded writing (a resumed run's records
    include those of its interrupted part), each looked up by name in the callback's own folder
    (as `selected_checkpoint` does): never a file another run or the user put there."""
    found: set[Path] = set()
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            names = [*callback.best_k_models, callback.best_model_path, callback.last_model_path, callback.kth_best_model_path]
        elif isinstance(callback, InterruptCheckpoint):
            names = [str(callback.written)] if callback.written else []
        else:
            continue
        folder = Path(callback.dirpath)
        found |= {folder / Path(name).name for name in names if name and (folder / Path(name).name).is_file()}
    return found


def remove_checkpoints(trainer: L.Trainer) -> int:
    """Delete the checkpoint files this run wrote (`written_checkpoints`), and their folder once
    empty; returns the bytes freed. Only called once model.pt is written."""
    freed = 0
    for path in written_checkpoints(trainer):
        freed += path.lstat().st_size
        path.unlink()
        if not any(path.parent.iterdir()):
            path.parent.rmdir()
    return freed


def dev_spearman(trainer: L.Trainer, model: PairTask, datamodule: Any) -> float:
    """Dev Spearman of the weights now in `model` (as fitting's model selection measures it)."""
    trainer.validate(model, datamodule=datamodule, verbose=False)
    return float(model.last_metrics["val"]["spearman"])


def selected_checkpoint(best: str | None, output_dir: Path) -> Path | None:
    """The best checkpoint of this run, which must lie in <run>/checkpoints/. A resumed run takes
    the path from last.ckpt, so it is data: a path elsewhere (a moved run directory, or a name
    planted in the file) is looked up by its file name in this run's checkpoints/ instead."""
    if not best:
        return None
    folder = (output_dir / "checkpoints").resolve()
    candidate = Path(best).resolve()
    if candidate.parent != folder:
        candidate = folder / Path(best).name
    if not candidate.is_file():
        raise STSError(f"{output_dir / 'checkpoints'}: the best checkpoint {Path(best).name!r} recorded in last.ckpt is not there (was the run directory moved without it?)")
    return candidate


def use_selected_weights(trainer: L.Trainer, task: PairTask, best: Path | None) -> None:
    """Put the weights that dev chose into `model` for the threshold, test and model file.

    The best checkpoint's state_dict holds the weights dev scored, averaged ones under weight
    averaging (EMA/SWA). Lightning's WeightAveraging would restore the raw weights when that
    checkpoint is loaded back and swap its last average in at every later validation, so it is
    detached once fitting is done. The checkpoint is read as plain data, like any other.
    """
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging)]
    if best:
        state_dict = checkpoint.read(best, type(task.model).__name__)["state_dict"]
        checkpoint.check_weights(best, task.model, state_dict)
        task.model.load_state_dict(state_dict)


def write_record(cfg: DictConfig, task: PairTask, trainer: L.Trainer, metrics: dict[str, float], path: Path, record: dict[str, Any] | None = None) -> None:
    """metrics.json: the run's figures with what produced them, for experiments/report.py and
    collect.py; `record` adds fields or replaces them (a soup's loss and epochs, a recipe's stages)."""
    fields = run_record(cfg, task, trainer) | {"metrics": metrics}
    path.write_text(json.dumps(fields | (record or {}), indent=2) + "\n")


def run_record(cfg: DictConfig, task: PairTask, trainer: L.Trainer, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced a model: experiment, data, encoder, loss, epochs, seed, hardware, versions,
    commit and command; metrics.json and the model file (its card) carry it. `record`'s flat
    fields (a soup's loss, a recipe's stage_seconds) replace these; nested ones stay in metrics.json."""
    fields = {
        "experiment": cfg.task_name,
        "architecture": type(task.model).__name__,
        "frozen": task.model.freeze_encoder,
        "loss": getattr(task.loss_fn, "name", type(task.loss_fn).__name__) if task.loss_fn is not None else None,
        "data": cfg.data.name,
        "encoder": pretrained_name(cfg.encoder.name_or_path),
        "epochs": trainer.current_epoch if cfg.train else 0,
        "steps": trainer.global_step,
        "seed": cfg.seed,
        "hardware": provenance.hardware(),
        "versions": provenance.versions(),
        "git_commit": provenance.git_commit(),
        "command": provenance.command(),
    }
    flat = {k: v for k, v in (record or {}).items() if k != "metrics" and (v is None or isinstance(v, (str, int, float, bool)))}
    return fields | flat


def pretrained_name(name_or_path: str | None) -> str:
    """The pretrained checkpoint's name: the bundled MiniLM (null), or a folder's or hub id's last part."""
    return BUNDLED_NAME if name_or_path in (None, "", "bundled") else Path(str(name_or_path)).name


def summary_rows(metrics: dict[str, float]) -> list[list[str]]:
    names = ("spearman", "pearson", "accuracy", "f1", "auroc")
    rows = [["split", *names, "threshold"]]
    for split in ("val", "test"):
        if f"{split}/spearman" in metrics:
            rows.append([split, *(f"{100 * metrics[f'{split}/{n}']:.2f}" for n in names), f"{metrics[f'{split}/threshold']:.3f}"])
    return rows
