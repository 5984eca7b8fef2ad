import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from sts.io import checkpoint
from sts.core.scorer import Scorer
from sts.errors import STSError

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


@pytest.mark.parametrize("model", ["tiny_model_file", "tiny_cross_model_file"])
def test_padding_to_a_multiple_changes_no_score_and_bounds_the_shapes(model: str, request: pytest.FixtureRequest) -> None:
    """pad_to_multiple_of: the encoder meets widths that are multiples of 8 (never beyond
    max_length), and the scores are those of padding to each batch's longest input."""
    module = checkpoint.load(request.getfixturevalue(model))
    s1 = ["a man eats", "dogs run in the park today", "a man eats " + "food " * 40]
    s2 = ["food is eaten", "cats sleep", "a man is eating"]
    plain = Scorer(module, batch_size=2, precision="fp32")(s1, s2)
    widths: list[int] = []
    original = module.encode
    module.encode = lambda features: widths.append(features["input_ids"].shape[1]) or original(features)  # type: ignore[method-assign]
    try:
        scorer = Scorer(module, batch_size=2, precision="fp32", pad_to_multiple_of=8)
        padded = scorer(s1, s2)
    finally:
        del module.encode
    assert widths and all(w % 8 == 0 or w == module.max_length for w in widths) and max(widths) <= module.max_length, widths
    np.testing.assert_allclose(padded, plain, atol=1e-5)
    with pytest.raises(STSError, match="pad_to_multiple_of=0: must be at least 1"):
        Scorer(module, pad_to_multiple_of=0)


@pytest.mark.parametrize("precision", ["fp16", "int4"])
def test_unknown_precision_is_an_error(tiny_model_file: Path, precision: str) -> None:
    from sts.errors import STSError

    with pytest.raises(STSError, match="precision"):
        Scorer(checkpoint.load(tiny_model_file), precision=precision)


ONE_MB = '''
import json, resource, sys
import torch
from transformers import AutoModel, AutoTokenizer
from sts.core import BiEncoder, CrossEncoder
from sts.core.scorer import Scorer
from sts.errors import STSError
from sts.core.windows import LongInputs

torch.set_num_threads(1)
folder = sys.argv[1]
text = " ".join(f"sentence {i} says something about topic {i % 7}." for i in range(30000))[:1_000_000]
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB, the process's high-water mark
out = {"chars": len(text)}
for cls, name in ((BiEncoder, "bi"), (CrossEncoder, "cross")):
    module = cls(encoder=AutoModel.from_pretrained(folder), tokenizer=AutoTokenizer.from_pretrained(folder), max_length=128)
    truncate = Scorer(module, batch_size=64, precision="fp32", backend="torch")
    chunk = Scorer(module, batch_size=64, precision="fp32", backend="torch", long_inputs=LongInputs("chunk"))
    shapes = []
    chunk.encode = lambda features, encode=module.encode: shapes.append(tuple(features["input_ids"].shape)) or encode(features)
    truncate(["a warm-up"], ["pair"])
    start = peak()
    truncate([text], ["a short query"])  # tokenises the whole text too (then cuts it): the peak to compare with
    truncated = peak()
    score = chunk([text], ["a short query"])
    out[name] = {"score": float(score[0]), "truncate_mib": truncated - start, "chunk_beyond_truncate_mib": peak() - truncated,
                 "inputs": sum(rows for rows, _ in shapes), "largest": [max(r for r, _ in shapes), max(c for _, c in shapes)]}
print(json.dumps(out))
'''


def test_a_1mb_text_is_scored_in_windows_with_bounded_memory(tiny_encoder: str, tmp_path: Path) -> None:
    """long_inputs=chunk on a 1 MB text (about 200,000 tokens, at the default chunk_max_windows):
    the windows are encoded batch_size at a time, never more than max_length tokens wide, and the
    process's peak memory grows by little beyond what truncating the same text takes (tokenising
    it whole, about 150 MiB); all windows' activations at once would take several times that."""
    import json
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", ONE_MB, tiny_encoder], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["chars"] == 1_000_000
    for name in ("bi", "cross"):
        found = out[name]
        assert found["inputs"] > 2000 and found["largest"] == [64, 128], found  # ~2,200 windows (pairs), 64 x 128 tokens at most per pass
        assert 0.0 <= found["score"] <= 1.0 and found["chunk_beyond_truncate_mib"] < 64, found
