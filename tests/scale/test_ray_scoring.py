"""predict engine=ray on a local two-node Ray cluster: the same rows, scores and labels as
predict.py in one process, the same one-line error for a bad row with nothing left under the
output name, and refusals (no extra, an output in the way) before Ray starts."""
from __future__ import annotations

import builtins
import csv
import glob
import json
import threading
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from sts.commands.predict import predict
from sts.errors import STSError
from sts.scale import ray_scoring
from sts.scale.ray_scoring import MARKER, Output, ScorePairs

from conftest import refused

TOLERANCE = 1e-6  # fp32 on both sides; predict.py's CSV holds 6 decimals
ODD = ['she said "hi, there"', "tab\tinside", "two\nlines", "猫がマットの上に座っている。", "🐈‍⬛ sits 👍🏽", "ends with a backslash \\"]


def predict_cfg(ckpt: Path, input: Path | str, **overrides: object) -> DictConfig:
    from sts.config import compose

    cfg = compose("predict", ["input=x"])
    return OmegaConf.merge(cfg, {"ckpt": str(ckpt), "input": str(input), "progress": False, "precision": "fp32", "preview_rows": 0, **overrides})


def ray_cfg(ckpt: Path, input: Path | str, output: Path, nodes, **ray: object) -> DictConfig:
    settings = {"address": nodes.address, "concurrency": 2, "batch_size": 256} | ray
    return predict_cfg(ckpt, input, engine="ray", output=str(output), columns=["line1", "line2"], ray=settings)


def write_pairs(folder: Path, files: int = 3, rows: int = 700, bad: tuple[int, int] | None = None) -> list[Path]:
    """`files` CSVs of `rows` pairs with an id column (leading zeros), odd text (quotes, tabs,
    newlines, CJK, emoji) and a number column; `bad` = (file, row index) gets an empty line2."""
    folder.mkdir()
    paths = []
    for f in range(files):
        path = folder / f"part-{f}.csv"
        with open(path, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "line1", "line2", "note"])
            for i in range(rows):
                line2 = " " if bad == (f, i) else f"{ODD[i % len(ODD)]} {i % 97}"
                writer.writerow([f"{f}{i:05d}", f"sentence {i} of file {f}, about {i % 13}", line2, i * 0.5])
        paths.append(path)
    return paths


def read_back(folder: Path) -> list[dict]:
    """Ray's output files in name order (write-task order, which keeps the input order)."""
    import pyarrow.parquet as pq

    return [row for name in sorted(glob.glob(str(folder / "*.parquet"))) for row in pq.read_table(name).to_pylist()]


def same_as_predict(rows: list[dict], paths: list[Path], ckpt: Path, tmp: Path) -> None:
    """Each file's rows, in order, equal predict.py's output for that file: every column as it
    was written, score within TOLERANCE, and the same lbl."""
    assert [r["path"] for r in rows] == [str(p) for p in paths for _ in range(len(rows) // len(paths))]
    for path in paths:
        expected = predict(predict_cfg(ckpt, path, output=str(tmp / f"{path.stem}.pred.csv"), columns=["line1", "line2"]))
        with open(expected, encoding="utf-8", newline="") as f:
            local = list(csv.DictReader(f))
        mine = [r for r in rows if r["path"] == str(path)]
        assert len(mine) == len(local)
        for got, want in zip(mine, local):
            assert {k: str(got[k]) for k in ("id", "line1", "line2", "note")} == {k: want[k] for k in ("id", "line1", "line2", "note")}
            assert abs(got["score"] - float(want["score"])) <= TOLERANCE and got["lbl"] == int(want["lbl"]), (got, want)


def test_on_a_two_node_cluster(tiny_model_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Every job that needs the cluster, in one test, so one xdist worker starts it (xdist 3.8's
    loadgroup does not group tests under pytest 9). Two Ray nodes on this machine, 2 logical CPUs
    each (two actors leave room for reading and writing tasks), joined by this process.

    Ray's usage stats are off: with them on, Ray Data starts a daemon thread in this process that
    queries Prometheus every 10 s for as long as the process lives, past ray.shutdown(), and its
    imports raced a later test's first `import wandb` on the same xdist worker (a partially
    initialised module, CI at faf3956)."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False, "object_store_memory": 100 * 2**20})
    nodes.add_node(num_cpus=2, object_store_memory=100 * 2**20)
    ray.init(address=nodes.address, log_to_driver=False, logging_level="ERROR")
    nodes.wait_for_nodes()
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        command_labels_a_folder_like_predict(nodes, tiny_model_file, tmp_path / "folder", capsys)
        python_recipe_on_parquet(tiny_model_file, tmp_path / "folder", tmp_path / "recipe")
        for fault in ("empty sentence", "ragged row"):
            bad_row_is_predicts_one_line(fault, nodes, tiny_model_file, tmp_path / fault.replace(" ", "-"), capsys)
    finally:
        ray.shutdown()
        nodes.shutdown()
    assert "data-usage-metrics-poller" not in [t.name for t in threading.enumerate()]


def command_labels_a_folder_like_predict(nodes, ckpt: Path, folder: Path, capsys) -> None:
    """`sts predict engine=ray` over a folder of three CSVs (2,100 rows) gives predict.py's rows."""
    folder.mkdir()
    paths = write_pairs(folder / "in")
    capsys.readouterr()
    predict(ray_cfg(ckpt, folder / "in", folder / "scored", nodes))
    said = capsys.readouterr().out
    assert said.splitlines()[-1].startswith(f"wrote 2100 rows from 3 file(s) to {folder / 'scored'} (lbl = score >= ")
    assert sorted(p.name for p in folder.iterdir()) == ["in", "scored"]  # no temporary sibling left
    marker = json.loads((folder / "scored" / MARKER).read_text())
    assert marker["rows"] == 2100 and marker["columns"] == ["line1", "line2"] and marker["format"] == "csv"
    rows = read_back(folder / "scored")
    assert list(rows[0]) == ["id", "line1", "line2", "note", "path", "score", "lbl"]
    (folder / "local").mkdir()
    same_as_predict(rows, paths, ckpt, folder / "local")


def python_recipe_on_parquet(ckpt: Path, folder: Path, work: Path) -> None:
    """The README's recipe: Ray's Parquet reader and ScorePairs in map_batches give the rows the
    command gave (which the step above holds to predict.py)."""
    import pandas as pd
    import ray

    work.mkdir()
    for path in sorted((folder / "in").glob("*.csv")):
        pd.read_csv(path, dtype=str, keep_default_na=False).to_parquet(work / f"{path.stem}.parquet")
    files = sorted(glob.glob(str(work / "*.parquet")))
    dataset = ray.data.read_parquet(files, include_paths=True).map_batches(
        ScorePairs,
        fn_constructor_kwargs={"ckpt": str(ckpt), "columns": ["line1", "line2"], "precision": "fp32"},
        batch_size=256,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    rows = dataset.to_pandas().to_dict("records")
    assert sorted({r["path"] for r in rows}) == files
    command = {(Path(r["path"]).stem, r["id"]): r for r in read_back(folder / "scored")}
    assert len(rows) == len(command)
    for row in rows:  # this pipeline does not ask Ray to keep the order: the file and id trace each row
        want = command[(Path(row["path"]).stem, row["id"])]
        assert {k: row[k] for k in ("line1", "line2", "note", "lbl")} == {k: want[k] for k in ("line1", "line2", "note", "lbl")}
        assert abs(row["score"] - want["score"]) <= TOLERANCE


def bad_row_is_predicts_one_line(fault: str, nodes, ckpt: Path, folder: Path, capsys) -> None:
    """An empty sentence (found by a worker) or a ragged row (by Ray's reader): predict.py's one
    line for that file, exit 2, and nothing under the output name or beside it."""
    folder.mkdir()
    paths = write_pairs(folder / "in", rows=400, bad=(1, 250) if fault == "empty sentence" else None)
    if fault == "ragged row":
        with open(paths[2], "a", encoding="utf-8") as f:
            f.write("x,one,two,3,surplus\n")
    culprit = paths[1 if fault == "empty sentence" else 2]
    expected = refused(capsys, predict, predict_cfg(ckpt, culprit, output=str(folder / "local.csv"), columns=["line1", "line2"]))
    assert expected.startswith(f"error: {culprit}: row "), expected
    assert refused(capsys, predict, ray_cfg(ckpt, folder / "in", folder / "scored", nodes, concurrency=1)) == expected, fault
    assert sorted(p.name for p in folder.iterdir()) == ["in"], fault  # no output, no temporary sibling


def test_without_the_extra_one_line_says_what_to_install(tiny_model_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    write_pairs(tmp_path / "in", files=1, rows=3)
    cfg = predict_cfg(tiny_model_file, tmp_path / "in", engine="ray", output=str(tmp_path / "out"))
    assert refused(capsys, predict, cfg) == "error: engine=ray needs Ray Data: pip install 'sts[ray]'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_output_in_the_way_is_refused_before_ray_starts(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("ray")
    write_pairs(tmp_path / "in", files=1, rows=3)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    cases = {
        "mine": (False, "already exists; pass overwrite=true to replace it"),
        "mine ": (True, f"overwrite=true only replaces a folder predict engine=ray wrote (with its {MARKER})"),
        "in/sub": (True, "refusing to write over the input input="),
        "nowhere/out": (False, "output directory does not exist"),
    }
    for name, (overwrite, message) in cases.items():
        cfg = predict_cfg(tiny_model_file, tmp_path / "in", engine="ray", output=str(tmp_path / name.strip()), overwrite=overwrite)
        assert message in refused(capsys, predict, cfg), name
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious" and not (tmp_path / "in" / "sub").exists()
    with pytest.raises(STSError, match="engine=ray writes a folder of files: set output=FOLDER"):
        predict(predict_cfg(tiny_model_file, tmp_path / "in", engine="ray"))


def test_overwrite_replaces_only_a_folder_it_wrote(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    old = tmp_path / "scored"
    old.mkdir()
    (old / "old.parquet").write_text("old")
    (old / MARKER).write_text(json.dumps({"rows": 1}))
    out = Output(str(old), overwrite=True, inputs=[])
    Path(out.tmp).mkdir()
    (Path(out.tmp) / "new.parquet").write_text("new")
    out.place({"rows": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]
    assert sorted(p.name for p in old.iterdir()) == sorted([MARKER, "new.parquet"]) and json.loads((old / MARKER).read_text()) == {"rows": 2}


def test_inputs_file_folder_glob_and_one_format(tmp_path: Path) -> None:
    paths = write_pairs(tmp_path / "in", files=2, rows=2)
    (tmp_path / "in" / ".hidden.csv").write_text("x")
    (tmp_path / "in" / "_SUCCESS").write_text("")
    assert ray_scoring.input_files(str(tmp_path / "in"), None) == ([str(p) for p in paths], "csv")
    assert ray_scoring.input_files(str(tmp_path / "in" / "*-1.csv"), None) == ([str(paths[1])], "csv")
    assert ray_scoring.input_files(f"file://{tmp_path / 'in'}", None)[0] == [f"file://{p}" for p in paths]
    (tmp_path / "in" / "more.jsonl").write_text("{}\n")
    with pytest.raises(STSError, match="holds files of several formats \\(csv, jsonl\\)"):
        ray_scoring.input_files(str(tmp_path / "in"), None)
    with pytest.raises(STSError, match="no files match"):
        ray_scoring.input_files(str(tmp_path / "*.parquet"), None)
