import json
import struct
from pathlib import Path
from typing import Any

import pytest

from sts.training.fit import train
from sts.training.tracking import SafeWandbLogger


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """History rows, final summary, config and group of an offline wandb run, read from its
    .wandb file (LevelDB log blocks of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = next(run_dir.glob("run-*.wandb")).read_bytes()
    block, pos, buf, records = 32768, 7, b"", []
    while pos + 7 <= len(raw):
        left = block - pos % block
        _, n, kind = struct.unpack("<IHB", raw[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (kind == 0 and n == 0):
            pos += left
            continue
        buf += raw[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # full or last fragment
            records.append(buf)
            buf = b""
    out: dict[str, Any] = {"history": [], "summary": {}, "config": {}, "group": None}
    for data in records:
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out["summary"] |= {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update}
        elif kind == "config":
            out["config"] |= {i.key: json.loads(i.value_json) for i in record.config.update}
        elif kind == "run":
            out["group"] = record.run.run_group
    return out


def test_wandb_offline_run_holds_config_metrics_threshold_plot_and_worst_pairs(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = tiny_cfg("logger=wandb", "model=cross_encoder", "trainer.max_steps=4", "trainer.val_check_interval=2")
    metrics = train(cfg)
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    assert run["config"]["model"]["_target_"] == "sts.core.CrossEncoder"
    assert run["config"]["paths"]["output_dir"] == cfg.paths.output_dir  # resolved
    steps = {row["trainer/global_step"] for row in run["history"] if "train/loss" in row}
    assert len(steps) >= 3  # per step
    assert sum("train/loss_epoch" in row for row in run["history"]) >= 1  # per epoch
    assert sum("val/spearman" in row for row in run["history"]) >= 2  # during fit and final
    assert run["summary"]["test/spearman"] == pytest.approx(metrics["test/spearman"])
    assert run["summary"]["threshold"] == pytest.approx(metrics["val/threshold"])
    files = runs[0] / "files" / "media" / "table" / "test"
    assert list(files.glob("scatter_table_*.table.json"))
    worst = json.loads(next(files.glob("worst_pairs_*.table.json")).read_text())
    assert worst["columns"] == ["sentence1", "sentence2", "gold", "predicted", "error"]
    errors = [row[4] for row in worst["data"]]
    assert 0 < len(errors) <= 20 and errors == sorted(errors, reverse=True)
    assert all(row[4] == pytest.approx(abs(row[3] - row[2])) for row in worst["data"])
    import wandb

    assert wandb.run is None  # finished with the job


def test_wandb_that_cannot_start_falls_back_without_failing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import wandb

    modes: list[Any] = []

    def init(**kwargs: Any) -> Any:
        modes.append(kwargs.get("mode"))
        if kwargs.get("mode") != "disabled":
            raise wandb.errors.CommError("network unreachable")
        return real_init(**kwargs)

    real_init = wandb.init
    monkeypatch.setattr(wandb, "init", init)
    logger = SafeWandbLogger(project="sts", save_dir=str(tmp_path))
    logger.log_metrics({"val/spearman": 0.5}, step=1)
    assert modes == [None, "offline", "disabled"]
    logger.experiment.finish()
