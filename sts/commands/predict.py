"""predict(cfg): label a user's table of sentence pairs with `score` and `lbl`, streaming in
chunks so memory stays bounded, writing atomically so an error or interruption leaves no
partial output."""
from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

import hydra

from sts.api import OUTPUT_COLUMNS, Model, load
from sts.commands.cli import entry, run
from sts.config import options, scoring_settings
from sts.core.scorer import chunks, progress, progress_shown
from sts.data import readers
from sts.data.tables import Table, TableWriter, atomic_output, check_output, count_lines, listed
from sts.data.terminal import format_table
from sts.errors import InputError, STSError
from sts.io import bundled



def sentence_columns(table: Table, columns: list[str] | None) -> tuple[str, str]:
    """The configured two columns, or the table's two text (non-numeric) columns."""
    sample = [record for _, record in zip(range(200), (r for _, r in table.rows()))] if not columns else []
    return readers.sentence_columns(table.path, table.columns, sample, columns)


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.pred.csv")


def _sentences(table: Table, first: str, second: str) -> tuple[list[str], list[str]]:
    """All sentence pairs of the table, validated (the multi-process path scores them at once)."""
    texts1, texts2 = [], []
    for _, _, text1, text2 in readers.checked_pairs(table, first, second):
        texts1.append(text1)
        texts2.append(text2)
    return texts1, texts2


def _score_in_processes(cfg: DictConfig, model: Model, table: Table, first: str, second: str, output: Path) -> np.ndarray | None:
    """Scores from `trainer.devices` processes (Lightning predict loop + DDP); None on ranks > 0."""
    from sts.training.distributed import score_distributed  # Lightning: only for several processes

    texts1, texts2 = _sentences(table, first, second)
    workdir = output.with_name(f".{output.name}.shards")
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    try:
        return score_distributed(model.scorer, texts1, texts2, trainer_kwargs, workdir, cfg.chunk_size)
    finally:
        if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0:
            shutil.rmtree(workdir, ignore_errors=True)


def zero_shot_notice() -> str:
    """What labels a table when no ckpt= is given, in one line."""
    record = bundled.record()
    return (
        f"no ckpt= given: labelling with the bundled {bundled.NAME} used zero-shot (STS-B test Spearman {100 * record['test']['spearman']:.2f}, "
        f"threshold {record['threshold']:.3f} chosen on dev); `make train` trains a better model (README, Quickstart)"
    )


def _threshold(cfg: DictConfig, own: float) -> float:
    """lbl = score >= this: threshold= or the model's own (chosen on dev)."""
    threshold = own if cfg.threshold is None else float(cfg.threshold)
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise STSError(f"threshold={threshold}: must be between 0 and 1")
    return threshold


def _predict_on_ray(cfg: DictConfig) -> Path:
    """engine=ray: the same labels, from actors on a Ray cluster, into the folder `output`."""
    from sts.api import describe
    from sts.scale.ray_scoring import RaySettings, import_ray, score_files

    import_ray()  # without the extra: one line, before a model is read
    if not cfg.output:
        raise STSError("engine=ray writes a folder of files: set output=FOLDER (a path, or a URI such as s3://bucket/scored)")
    if cfg.trainer.devices not in (1, "1"):
        raise STSError("engine=ray scales with ray.concurrency (actors), not trainer.devices: leave trainer.devices=1")
    ckpt = str(Path(cfg.ckpt).absolute()) if cfg.ckpt and Path(cfg.ckpt).exists() else cfg.ckpt  # read by workers in other folders
    threshold = _threshold(cfg, describe(ckpt, both_orders=cfg.get("both_orders")).threshold)
    if cfg.ckpt is None:
        print(zero_shot_notice())
    ray = OmegaConf.to_container(cfg.ray, resolve=True)
    settings = scoring_settings(cfg) | ({"device": "cuda"} if ray["num_gpus"] else {})
    rows, files = score_files(cfg.input, cfg.output, fmt=cfg.get("format"), columns=list(cfg.columns) if cfg.columns else None, threshold=threshold,
                              ckpt=ckpt, both_orders=cfg.get("both_orders"), settings=settings, overwrite=cfg.overwrite, ray_settings=RaySettings(**ray),
                              progress=progress_shown(cfg.progress))
    print(f"wrote {rows} rows from {len(files)} file(s) to {cfg.output} (lbl = score >= {threshold:.3f})")
    return Path(cfg.output)


def predict(cfg: DictConfig) -> Path:
    """Write every input row, unchanged and in order, plus `score` (0-1) and `lbl` (0/1)."""
    options.check(cfg, options.PREDICT)
    if cfg.get("engine") == "ray":
        return _predict_on_ray(cfg)
    input_path = Path(cfg.input)
    table = Table(input_path, cfg.get("format"))
    first, second = sentence_columns(table, list(cfg.columns) if cfg.columns else None)
    clash = [c for c in OUTPUT_COLUMNS if c in table.columns]
    if clash:
        raise InputError(input_path, f"already has column(s) {clash}, which the output adds")
    output = Path(cfg.output) if cfg.output else default_output(input_path)
    output_format = check_output({"input": input_path, "ckpt": cfg.ckpt, "calibration": cfg.get("calibration")}, output, cfg.overwrite)
    model = load(cfg.ckpt, **scoring_settings(cfg), both_orders=cfg.get("both_orders"))
    if cfg.ckpt is None:
        print(zero_shot_notice())
    threshold = _threshold(cfg, model.threshold)
    precomputed = None  # several processes score everything first; one process streams chunk by chunk
    if cfg.trainer.devices not in (1, "1"):
        precomputed = _score_in_processes(cfg, model, table, first, second, output)
        if precomputed is None:
            return output  # not rank 0: rank 0 writes the file
    preview: list[dict[str, Any]] = []
    written = 0
    with atomic_output(output, cfg.overwrite) as handle, progress(max(count_lines(str(table.source)) - 1, 1), cfg.progress) as bar:
        writer = TableWriter(handle, [*table.columns, *OUTPUT_COLUMNS], output_format)
        for chunk in chunks(readers.checked_pairs(table, first, second), cfg.chunk_size):
            texts1, texts2 = [text1 for _, _, text1, _ in chunk], [text2 for _, _, _, text2 in chunk]
            scores = model.score(texts1, texts2) if precomputed is None else precomputed[written : written + len(texts1)]
            rows = [record | {"score": f"{s:.6f}", "lbl": int(s >= threshold)} for (_, record, _, _), s in zip(chunk, scores)]
            writer.write(rows)
            preview.extend(rows[: max(cfg.preview_rows - len(preview), 0)])
            written += len(rows)
            bar.update(len(rows))
    if preview:
        print(format_table([list(preview[0].keys()), *([str(v) for v in r.values()] for r in preview)]))
    print(f"wrote {written} rows to {output} (lbl = score >= {threshold:.3f})")
    return output

@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def _main(cfg: DictConfig) -> None:
    run(predict, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
