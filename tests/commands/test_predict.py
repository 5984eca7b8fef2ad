"""predict() and predict.py on bad, odd and hostile input: every error is one line naming file,
row and problem with exit code 2 and no output; good rows come back intact and in order."""
from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from sts.commands.cli import run
from sts.config import CONFIG_DIR
from sts.data import tables
from sts.errors import STSError
from sts.commands.predict import predict

from conftest import ROOT
from helpers import BAD_TABLES, Evil, assert_one_line_error, foreground, run_cli, write_case

def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def predict_cfg(ckpt: Path, input: Path, **overrides: object) -> DictConfig:
    """predict.yaml as predict.py composes it, with fields set directly (paths need no quoting)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("predict")
    return OmegaConf.merge(cfg, {"ckpt": str(ckpt), "input": str(input), "progress": False, **overrides})


@pytest.mark.parametrize("case", BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_bad_input_one_line_exit_2_no_output(case: tuple, tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    path = write_case(tmp_path, case, "id")
    before = files(tmp_path)
    with pytest.raises(SystemExit) as e:
        run(predict, predict_cfg(tiny_model_file, path, columns=["sentence1", "sentence2"]))
    assert e.value.code == 2
    assert_one_line_error(capsys.readouterr().err, path, case, "id")
    assert files(tmp_path) == before  # no output and no temporary file


def test_unknown_columns_list_the_columns_found(tiny_model_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("q,d,note\na,b,c\n")
    with pytest.raises(STSError, match=r"cannot tell which two columns.*columns found: \['q', 'd', 'note'\]"):
        predict(predict_cfg(tiny_model_file, path))
    with pytest.raises(STSError, match=r"missing column\(s\) \['line2'\]; columns found: \['q', 'd', 'note'\]"):
        predict(predict_cfg(tiny_model_file, path, columns=["q", "line2"]))
    assert files(tmp_path) == ["in.csv"]


def pairs_file(folder: Path, rows: list[tuple[str, str]], name: str = "in.csv") -> Path:
    path = folder / name
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "line1", "line2"])
        writer.writerows((i, a, b) for i, (a, b) in enumerate(rows))
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


PAIRS = [("the cat ate the mouse", "the mouse was eaten by the cat"), ("a dog runs", "the alligator is fat")]


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink", "hardlink"])
def test_never_writes_over_its_input(spelling: str, tiny_model_file: Path, tmp_path: Path) -> None:
    path = pairs_file(tmp_path, PAIRS)
    before = path.read_bytes()
    output = {"same": path, "dotted": tmp_path / "." / "sub" / ".." / "in.csv", "symlink": tmp_path / "link.csv", "hardlink": tmp_path / "hard.csv"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        output.symlink_to(path)
    if spelling == "hardlink":
        os.link(path, output)
    with pytest.raises(STSError, match="refusing to write over the input input=.* \(the output is it\)"):
        predict(predict_cfg(tiny_model_file, path, output=str(output), overwrite=True))
    assert path.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def test_existing_output_needs_overwrite(tiny_model_file: Path, tmp_path: Path) -> None:
    path = pairs_file(tmp_path, PAIRS)
    output = tmp_path / "in.pred.csv"
    output.write_text("precious\n")
    assert predict_cfg(tiny_model_file, path).overwrite is False
    with pytest.raises(STSError, match="already exists; pass overwrite=true"):
        predict(predict_cfg(tiny_model_file, path))
    assert output.read_text() == "precious\n"
    predict(predict_cfg(tiny_model_file, path, overwrite=True))
    assert read_csv(output)[0] == ["id", "line1", "line2", "score", "lbl"]


def test_error_mid_stream_keeps_previous_output_and_leaves_no_temporary(tiny_model_file: Path, tmp_path: Path) -> None:
    path = pairs_file(tmp_path, [*PAIRS * 3, ("x", " ")])
    output = tmp_path / "in.pred.csv"
    output.write_text("precious\n")
    with pytest.raises(STSError, match=r"row 8: line2 is empty"):
        predict(predict_cfg(tiny_model_file, path, overwrite=True, chunk_size=2))
    assert output.read_text() == "precious\n" and files(tmp_path) == ["in.csv", "in.pred.csv"]


def test_unwritable_output_is_one_clear_error(tiny_model_file: Path, tmp_path: Path, monkeypatch) -> None:
    path = pairs_file(tmp_path, PAIRS)
    with pytest.raises(STSError, match="output directory does not exist"):
        predict(predict_cfg(tiny_model_file, path, output=str(tmp_path / "nowhere" / "out.csv")))
    with pytest.raises(STSError, match="cannot tell the format from suffix '.txt'"):
        predict(predict_cfg(tiny_model_file, path, output=str(tmp_path / "out.txt")))

    def full_disk(self, rows) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tables.TableWriter, "write", full_disk)
    with pytest.raises(STSError, match=r"out.csv: cannot write the output \(No space left on device\)"):
        predict(predict_cfg(tiny_model_file, path, output=str(tmp_path / "out.csv")))
    assert files(tmp_path) == ["in.csv"]


UNICODE = [
    ("猫がマットの上に座っている。", "一只猫坐在垫子上。"),
    ("🐈‍⬛ sits 👍🏽 on 🇫🇷", "a cat 😺 is sitting"),
    ("القطة تجلس على الحصيرة", "החתול יושב על השטיח"),
    ("e\u0301te\u0301 (NFD) and été (NFC)", "Z\u0351\u0362a\u0335lgo \u200b zero width\u200d"),
    ('she said "hi, there"', "tab\tinside, comma"),
    ("two\nlines", "carriage\rreturn and\r\nCRLF"),
    ("  padded  ", "ends with a backslash \\"),
]


@pytest.mark.parametrize("name, bom", [("in.csv", False), ("in.csv", True), ("in.tsv", False), ("in.jsonl", False)])
def test_unicode_quotes_tabs_newlines_come_back_byte_identical(name: str, bom: bool, tiny_model_file: Path, tmp_path: Path) -> None:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps({"id": i, "line1": a, "line2": b}, ensure_ascii=False) + "\n" for i, (a, b) in enumerate(UNICODE)), encoding="utf-8")
    else:
        with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
            csv.writer(f, delimiter="\t" if name.endswith(".tsv") else ",").writerows([["id", "line1", "line2"], *([i, a, b] for i, (a, b) in enumerate(UNICODE))])
    output = predict(predict_cfg(tiny_model_file, path, output=str(tmp_path / "out.jsonl"), columns=["line1", "line2"]))
    back = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [(r["line1"].encode(), r["line2"].encode()) for r in back] == [(a.encode(), b.encode()) for a, b in UNICODE]
    assert [str(r["id"]) for r in back] == [str(i) for i in range(len(UNICODE))]
    rows = read_csv(predict(predict_cfg(tiny_model_file, path, columns=["line1", "line2"])))
    assert rows[0] == ["id", "line1", "line2", "score", "lbl"]
    assert [(a.encode(), b.encode()) for _, a, b, _, _ in rows[1:]] == [(a.encode(), b.encode()) for a, b in UNICODE]


TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
SENTENCE = st.text(TEXT, min_size=1, max_size=30).filter(lambda s: s.strip() and s.strip().lower() not in ("nan", "null", "none"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(SENTENCE, SENTENCE, st.text(TEXT, max_size=12)), min_size=1, max_size=25), fmt=st.sampled_from(["csv", "tsv", "jsonl"]))
def test_property_rows_order_and_input_columns_untouched(rows: list[tuple[str, str, str]], fmt: str, tiny_model_file: Path, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("prop")
    path = folder / f"in.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "s1": a, "s2": b, "note": n}, ensure_ascii=False) + "\n" for i, (a, b, n) in enumerate(rows)), encoding="utf-8")
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, delimiter="\t" if fmt == "tsv" else ",").writerows([["id", "s1", "s2", "note"], *([i, *row] for i, row in enumerate(rows))])
    out = read_csv(predict(predict_cfg(tiny_model_file, path, columns=["s1", "s2"], chunk_size=7, preview_rows=0)))
    assert out[0] == ["id", "s1", "s2", "note", "score", "lbl"]
    assert [tuple(r[:4]) for r in out[1:]] == [(str(i), *row) for i, row in enumerate(rows)]
    assert all(0.0 <= float(r[4]) <= 1.0 and r[5] in ("0", "1") for r in out[1:])


def test_100k_character_sentence_truncated_with_one_warning(tiny_model_file: Path, tmp_path: Path, caplog) -> None:
    long = " ".join(f"word{i % 97}" for i in range(20_000))[:100_000]
    assert len(long) == 100_000
    path = pairs_file(tmp_path, [(long, "a short one"), *PAIRS])
    with caplog.at_level(logging.WARNING):
        rows = read_csv(predict(predict_cfg(tiny_model_file, path)))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "truncated" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
    assert len(rows) == 4 and rows[1][1] == long


def test_long_inputs_chunk_reads_the_long_sentence_whole_without_a_warning(tiny_model_file: Path, tmp_path: Path, caplog, capsys) -> None:
    import sts
    from conftest import refused

    long = " ".join(f"word{i % 97} and more" for i in range(400))
    path = pairs_file(tmp_path, [(long, "a short one"), *PAIRS])
    with caplog.at_level(logging.WARNING):
        rows = read_csv(predict(predict_cfg(tiny_model_file, path, long_inputs="chunk", precision="fp32", output=str(tmp_path / "chunk.csv"))))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    truncated = read_csv(predict(predict_cfg(tiny_model_file, path, precision="fp32", output=str(tmp_path / "truncate.csv"))))
    expected = sts.load(tiny_model_file, precision="fp32", long_inputs="chunk").score([long, *(a for a, _ in PAIRS)], ["a short one", *(b for _, b in PAIRS)])
    assert [float(r[3]) for r in rows[1:]] == pytest.approx(expected.tolist(), abs=2e-6)
    assert rows[1][3] != truncated[1][3] and [r[3] for r in rows[2:]] == [r[3] for r in truncated[2:]]
    error = refused(capsys, predict, predict_cfg(tiny_model_file, path, long_inputs="paragraphs", overwrite=True))
    assert error == "error: option long_inputs='paragraphs' must be one of truncate, chunk"
    assert "option chunk_reduce='min' must be one of max, mean" in refused(capsys, predict, predict_cfg(tiny_model_file, path, chunk_reduce="min", overwrite=True))


@pytest.fixture
def bad_checkpoints(tiny_model_file: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Hostile or broken checkpoints, each with the start of the error it must give."""
    made = tmp_path / "ckpts"
    made.mkdir()
    evil = made / "evil.pt"
    torch.save({"sts": {}, "state_dict": {}, "x": Evil(str(tmp_path / "pwned"))}, evil, pickle_protocol=2)
    (made / "notes.pt").write_text("not a checkpoint")
    (made / "cut.pt").write_bytes(tiny_model_file.read_bytes()[:5000])
    raw = torch.load(tiny_model_file, weights_only=True)
    torch.save({"sts": raw["sts"] | {"architecture": "CrossEncoder"}, "state_dict": raw["state_dict"]}, made / "claims-cross.pt")
    first = next(iter(raw["state_dict"]))
    torch.save(raw | {"state_dict": raw["state_dict"] | {first: torch.zeros(3)}}, made / "tampered.pt")
    torch.save({"weights": torch.zeros(2)}, made / "plain.pt")
    return {
        "evil": (evil, "refused to load: the checkpoint holds objects other than plain data"),
        "not a checkpoint": (made / "notes.pt", "not a readable checkpoint"),
        "truncated": (made / "cut.pt", "not a readable checkpoint"),
        "wrong architecture": (made / "claims-cross.pt", "checkpoint field sts.hparams has an unknown key 'head_hidden'"),
        "tampered weights": (made / "tampered.pt", "weights do not match the BiEncoder they are loaded into: 1 tensor(s) differ"),
        "no payload": (made / "plain.pt", "not an STS checkpoint"),
        "directory": (made, "a folder without config.json, so not a model folder"),
    }


def test_bad_checkpoints_one_line_and_nothing_runs(bad_checkpoints, tmp_path: Path, capsys) -> None:
    path = pairs_file(tmp_path, PAIRS)
    for name, (ckpt, message) in bad_checkpoints.items():
        with pytest.raises(SystemExit) as e:
            run(predict, predict_cfg(ckpt, path))
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(f"error: {ckpt}: {message}"), (name, err)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "in.pred.csv").exists()


def test_cli_refuses_evil_checkpoint_and_missing_input(bad_checkpoints, tiny_model_file: Path, tmp_path: Path) -> None:
    path = pairs_file(tmp_path, PAIRS)
    evil, message = bad_checkpoints["evil"]
    result = run_cli([str(ROOT / "predict.py"), f"ckpt={evil}", f"input={path}"], tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {evil}: {message}") and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "in.pred.csv").exists()
    result = run_cli([str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", f"input={tmp_path / 'missing.csv'}"], tmp_path)
    assert result.returncode == 2 and result.stderr == f"error: {tmp_path / 'missing.csv'}: file not found\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_predict_leaves_no_output(sig: signal.Signals, tiny_model_file: Path, tmp_path: Path) -> None:
    path = pairs_file(tmp_path, [(f"sentence number {i}", f"another sentence {i % 1000}") for i in range(200_000)])
    args = [sys.executable, str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", f"input={path}", "chunk_size=256"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=foreground)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".in.pred.csv.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "predict ended before it could be interrupted"
    time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted", (proc.returncode, err[-2000:])
    assert files(tmp_path) == ["in.csv"]


def test_no_ckpt_labels_the_examples_with_the_bundled_model(tmp_path: Path) -> None:
    """The quickstart without training: predict.py input=examples/pairs.csv gives 1, 0, 1."""
    out = tmp_path / "pairs.pred.csv"
    result = run_cli([str(ROOT / "predict.py"), f"input={ROOT / 'examples' / 'pairs.csv'}", f"output={out}"], tmp_path)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if not line.startswith("precision=auto")]
    assert said[0].startswith("no ckpt= given: labelling with the bundled all-MiniLM-L6-v2 used zero-shot (STS-B test Spearman 82.03")
    assert [row[-1] for row in read_csv(out)[1:]] == ["1", "0", "1"]
