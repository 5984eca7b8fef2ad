from pathlib import Path

import pytest
import torch

from sts.io import checkpoint
from sts.errors import STSError
from sts.core import BiEncoder

from helpers import Evil


def test_round_trip_is_self_contained_and_safe(tiny_model_file: Path) -> None:
    raw = torch.load(tiny_model_file, weights_only=True)  # plain data only
    assert raw["sts"]["architecture"] == "BiEncoder" and "tokenizer.json" in raw["sts"]["tokenizer_files"]
    module = checkpoint.load(tiny_model_file)
    assert isinstance(module, BiEncoder) and module.threshold == pytest.approx(raw["sts"]["threshold"])
    a = module.score_texts(["a cat sits"], ["a cat is sitting"])
    b = checkpoint.load(tiny_model_file).score_texts(["a cat sits"], ["a cat is sitting"])
    assert a == pytest.approx(b)


def test_lightning_ckpt_loads_too(tiny_cfg) -> None:
    from sts.training.fit import train

    cfg = tiny_cfg("trainer.max_steps=-1", "trainer.limit_train_batches=3", "trainer.max_epochs=1")
    train(cfg)
    best = next((Path(cfg.paths.output_dir) / "checkpoints").glob("best-*.ckpt"))
    assert isinstance(checkpoint.load(best), BiEncoder)


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"sts": {}, "state_dict": {}, "x": Evil(str(marker))}, evil, pickle_protocol=2)
    with pytest.raises(STSError, match="refused to load"):
        checkpoint.load(evil)
    assert not marker.exists()


def test_not_a_checkpoint_truncated_and_wrong_architecture(tmp_path: Path, tiny_model_file: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(STSError, match="not a readable checkpoint"):
        checkpoint.load(text)
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(tiny_model_file.read_bytes()[:5000])
    with pytest.raises(STSError, match="not a readable checkpoint"):
        checkpoint.load(truncated)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(STSError, match="not an STS checkpoint"):
        checkpoint.load(plain)
    with pytest.raises(STSError, match="is a BiEncoder, but CrossEncoder was requested"):
        checkpoint.load(tiny_model_file, architecture="CrossEncoder")
    with pytest.raises(STSError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt")
