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
from sts.core.scorer import chunks, progress
from sts.data.readers import check_sentence
from sts.data.tables import Table, TableWriter, atomic_output, check_output, count_lines, listed
from sts.data.terminal import format_table
from sts.errors import InputError, STSError
from sts.io import bundled



def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def sentence_columns(table: Table, columns: list[str] | None) -> tuple[str, str]:
    """The configured two columns, or the table's two text (non-numeric) columns."""
    if columns:
        if len(columns) != 2:
            raise InputError(table.path, f"columns= needs exactly two names, got {list(columns)}")
        table.require(*columns)
        return columns[0], columns[1]
    sample = [record for _, record in zip(range(200), (r for _, r in table.rows()))]
    text = [c for c in table.columns if not all(_is_number(r[c]) for r in sample)]
    if len(text) != 2:
        raise InputError(table.path, f"cannot tell which two columns hold the sentences (text columns: {listed(text)}; columns found: {listed(table.columns)}); set columns=[first,second]")
    return text[0], text[1]


def default_output(path: Path) -> Path:
    return path.with_name(f"{path.stem}.pred.csv")


def _sentences(table: Table, first: str, second: str) -> tuple[list[str], list[str]]:
    """All sentence pairs of the table, validated (the multi-process path scores them at once)."""
    texts1, texts2 = [], []
    for row, record in table.rows():
        texts1.append(check_sentence(table.path, row, record[first], first))
        texts2.append(check_sentence(table.path, row, record[second], second))
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


def predict(cfg: DictConfig) -> Path:
    """Write every input row, unchanged and in order, plus `score` (0-1) and `lbl` (0/1)."""
    options.check(cfg, options.PREDICT)
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
    threshold = model.threshold if cfg.threshold is None else float(cfg.threshold)
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise STSError(f"threshold={threshold}: must be between 0 and 1")
    precomputed = None  # several processes score everything first; one process streams chunk by chunk
    if cfg.trainer.devices not in (1, "1"):
        precomputed = _score_in_processes(cfg, model, table, first, second, output)
        if precomputed is None:
            return output  # not rank 0: rank 0 writes the file
    preview: list[dict[str, Any]] = []
    written = 0
    with atomic_output(output, cfg.overwrite) as handle, progress(max(count_lines(str(table.source)) - 1, 1), cfg.progress) as bar:
        writer = TableWriter(handle, [*table.columns, *OUTPUT_COLUMNS], output_format)
        for chunk in chunks(table.rows(), cfg.chunk_size):
            texts1 = [check_sentence(table.path, row, record[first], first) for row, record in chunk]
            texts2 = [check_sentence(table.path, row, record[second], second) for row, record in chunk]
            scores = model.score(texts1, texts2) if precomputed is None else precomputed[written : written + len(texts1)]
            rows = [record | {"score": f"{s:.6f}", "lbl": int(s >= threshold)} for (_, record), s in zip(chunk, scores)]
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
