"""Training faults: kill and resume, determinism, unwritable or full output disks, bad data files,
and resuming from a checkpoint of another model."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sts.io import checkpoint

from sts.training import fit as training
from sts.commands.cli import run
from sts.errors import STSError
from sts.training.fit import train

from conftest import ROOT, TINY_TRAINER
from helpers import BAD_TABLES, Evil, assert_one_line_error, run_cli, write_case

# Four short epochs of three steps, validated (and last.ckpt written) at the end of each.
EPOCHS = ["trainer.max_steps=-1", "trainer.max_epochs=4", "trainer.limit_train_batches=3", "callbacks.early_stopping.patience=10"]


def final_metrics(model_file: Path) -> dict[str, float]:
    metrics = torch.load(model_file, weights_only=True)["sts"]["metrics"]
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))}


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_same_result(tiny_cfg, tiny_encoder: str, tmp_path: Path) -> None:
    overrides = [f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER, *EPOCHS, "model.encoder_lr=3e-3"]
    whole = tiny_cfg(*overrides[1:])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses, so both sum in the same order
    try:
        expected = train(whole)
    finally:
        torch.set_num_threads(threads)
    run_dir = tmp_path / "killed"
    args = [str(ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (run_dir / "model.pt").exists(), "training finished before it was killed"
    assert 0 < last_checkpoint(run_dir)["global_step"] < 12
    result = run_cli([*args, "ckpt_path=last"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    done, reference = last_checkpoint(run_dir), last_checkpoint(Path(whole.paths.output_dir))
    assert done["global_step"] == reference["global_step"] == 12
    torch.testing.assert_close(done["state_dict"], reference["state_dict"], rtol=0, atol=1e-5)
    resumed = final_metrics(run_dir / "model.pt")
    assert resumed.keys() == final_metrics(Path(whole.model_file)).keys()
    for key, value in expected.items():
        if key in resumed:
            assert resumed[key] == pytest.approx(value, abs=1e-4), key


def test_same_seed_twice_same_metrics_and_weights(tiny_cfg) -> None:
    """Deterministic mode (README): seed=42 by default plus trainer.deterministic=true."""
    runs = []
    for again in (False, True):
        cfg = tiny_cfg("model=cross_encoder", "trainer.deterministic=true", f"overwrite={str(again).lower()}")  # the second replaces the first
        metrics = train(cfg)
        runs.append((final_metrics(Path(cfg.model_file)), torch.load(cfg.model_file, weights_only=True)["state_dict"]))
        assert metrics["val/spearman"] == runs[-1][0]["val/spearman"]
    (first, weights1), (second, weights2) = runs
    assert first == second
    assert all(torch.equal(weights1[k], weights2[k]) for k in weights1)


@pytest.fixture
def no_training(monkeypatch) -> None:
    """Fail the test if a model gets built: the checks under test must come first."""

    def built(cfg):
        raise AssertionError("a model was built before the failing check")

    monkeypatch.setattr(training, "build_model", built)


def test_full_disk_fails_before_training(tiny_cfg, no_training, monkeypatch, capsys) -> None:
    cfg = tiny_cfg()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    with pytest.raises(SystemExit) as e:
        run(train, cfg)
    assert e.value.code == 2
    assert capsys.readouterr().err == f"error: {cfg.paths.output_dir}: only 1 MiB free on its disk; at least 500 MiB are needed for checkpoints\n"


def test_unwritable_output_dir_fails_before_training(tiny_cfg, no_training, monkeypatch, tmp_path: Path) -> None:
    cfg = tiny_cfg()
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system")))
    with pytest.raises(STSError, match=r"output directory is not writable \(Read-only file system\)"):
        train(cfg)
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    cfg.paths.output_dir = str(blocked / "run")
    with pytest.raises(STSError, match=r"a-file/run: output directory is not writable"):
        train(cfg)


GOOD_TRAIN = "sentence1,sentence2,score\n" + "".join(f"sentence {i},another sentence {i},{i % 6}\n" for i in range(8))
TRAIN_ONLY = [
    ("score outside range", "in.csv", "sentence1,sentence2,score\na,b,1\nc,d,7\n", "score 7 is outside the range [0, 5] (data.score_range)", 3),
    ("score not a number", "in.csv", "sentence1,sentence2,score\na,b,high\n", "score 'high' is not a number", 2),
    ("score NaN", "in.csv", "sentence1,sentence2,score\na,b,nan\n", "score is NaN", 2),
    ("label not 0 or 1", "in.csv", "sentence1,sentence2,label\na,b,1\nc,d,2\n", "label '2' is not 0 or 1", 3),
    ("label yes", "in.jsonl", '{"sentence1": "a", "sentence2": "b", "label": "yes"}\n', "label 'yes' is not 0 or 1", 1),
]


@pytest.mark.parametrize("case", BAD_TABLES + TRAIN_ONLY, ids=[c[0] for c in BAD_TABLES + TRAIN_ONLY])
def test_bad_training_data_one_line_exit_2_no_model(case: tuple, tiny_cfg, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = write_case(data, case, "score")
    (data / "dev.csv").write_text(GOOD_TRAIN)
    cfg = tiny_cfg("data=pairs", f"data.train={path}", f"data.val={data / 'dev.csv'}")
    with pytest.raises(SystemExit) as e:
        run(train, cfg)
    assert e.value.code == 2
    assert_one_line_error(capsys.readouterr().err, path, case, "score")
    assert not Path(cfg.model_file).exists() and not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_resume_refuses_unsafe_or_mismatched_checkpoints(tiny_cfg, tiny_model_file: Path, tmp_path: Path) -> None:

    with pytest.raises(STSError, match=r"model.pt: checkpoint is a BiEncoder, but CrossEncoder was requested"):
        train(tiny_cfg("model=cross_encoder", f"ckpt_path={tiny_model_file}"))
    with pytest.raises(STSError, match=r"model.pt: not a Lightning training checkpoint .*a model.pt cannot be resumed"):
        train(tiny_cfg(f"ckpt_path={tiny_model_file}"))
    evil = tmp_path / "evil.ckpt"
    torch.save({"sts": {}, "state_dict": {}, "x": Evil(str(tmp_path / "pwned"))}, evil)
    with pytest.raises(STSError, match="refused to load"):
        train(tiny_cfg(f"ckpt_path={evil}"))
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(STSError, match=r"ckpt_path=last: no .*last.ckpt to resume from"):
        train(tiny_cfg("ckpt_path=last"))


def test_training_file_with_bom_and_quoted_fields_is_accepted(tmp_path: Path) -> None:
    from sts.data.readers import read_pairs

    path = tmp_path / "train.csv"
    path.write_bytes('\ufeffsentence1,sentence2,score\n"she said ""hi"", twice","tab\there\nand a newline",4\nété 猫 🐈,שלום,0\n'.encode())
    pairs = read_pairs(path, "table")
    assert pairs.sentence1 == ['she said "hi", twice', "été 猫 🐈"] and pairs.sentence2 == ["tab\there\nand a newline", "שלום"]
    assert list(pairs.gold) == [pytest.approx(0.8), 0.0]
