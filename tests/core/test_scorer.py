import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from sts.io import checkpoint
from sts.core.scorer import Scorer

from conftest import ROOT
from helpers import run_cli


def write_pairs(path: Path, n: int) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "a", "b"])
        writer.writerows([i, f"sentence number {i % 37}", f"another one {i % 11} here"] for i in range(n))


def test_scorer_matches_module_and_bf16_is_close(tiny_model_file: Path) -> None:
    module = checkpoint.load(tiny_model_file)
    s1, s2 = ["a man eats", "dogs run", "a man eats"], ["food is eaten", "cats sleep", "a man is eating"]
    fp32 = Scorer(module, batch_size=2, precision="fp32")(s1, s2)
    np.testing.assert_allclose(fp32, module.score_texts(s1, s2), atol=1e-6)
    bf16 = Scorer(module, batch_size=2, precision="bf16")(s1, s2)
    assert np.abs(bf16 - fp32).max() < 0.05


@pytest.mark.parametrize("model", ["tiny_model_file", "tiny_cross_model_file"])
def test_bf16_scorer_casts_linear_weights_once_to_what_autocast_computes(model: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    s1, s2 = ["a man eats", "dogs run", "a man eats"], ["food is eaten", "cats sleep", "a man is eating"]
    reference = checkpoint.load(path).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 autocast of the fp32 module, as before
        expected = reference.score_texts(s1, s2, batch_size=2)
    module = checkpoint.load(path)
    scores = Scorer(module, batch_size=2, precision="bf16", backend="torch")(s1, s2)
    np.testing.assert_array_equal(scores, expected)
    linear = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    assert module.encoder.embeddings.word_embeddings.weight.dtype == torch.float32
    untouched = checkpoint.load(path)
    Scorer(untouched, precision="fp32", backend="torch")
    assert all(p.dtype == torch.float32 for p in untouched.parameters())


def test_predict_on_two_processes_writes_one_file_in_input_order(tiny_model_file: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    write_pairs(pairs, 300)
    one = run_cli([str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", f"input={pairs}", f"output={tmp_path / 'one.csv'}", "precision=fp32"], tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    two = run_cli([str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", f"input={pairs}", f"output={tmp_path / 'two.csv'}", "trainer.devices=2", "chunk_size=50", "precision=fp32"], tmp_path)
    assert two.returncode == 0, two.stderr[-2000:]
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv", "pairs.csv", "two.csv"]  # shards cleaned up


@pytest.mark.parametrize("precision", ["fp16", "int4"])
def test_unknown_precision_is_an_error(tiny_model_file: Path, precision: str) -> None:
    from sts.errors import STSError

    with pytest.raises(STSError, match="precision"):
        Scorer(checkpoint.load(tiny_model_file), precision=precision)
