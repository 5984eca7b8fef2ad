"""embed.py: embeddings in input order from text files and table columns, clear errors, and
k-means clusters that put sentences meaning the same together (real bundled encoder)."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from sts.io import checkpoint
from sts.commands.embed import embed
from sts.errors import STSError

from conftest import ROOT, compose_config
from helpers import run_cli

CORPUS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is eating pasta.",
    "The girl is carrying a baby.",
    "The baby is carried by the woman",
    "A man is riding a horse.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "A cheetah is running behind its prey.",
    "A cheetah chases prey on across a field.",
]
SAME_MEANING = [[0, 1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]


def run_embed(*overrides: str) -> np.ndarray:
    return embed(compose_config("embed", list(overrides)))


def test_text_file_bundled_encoder_clusters_meanings(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    out = tmp_path / "corpus.npy"
    embeddings = run_embed(f"input={corpus}", f"out={out}", "cluster.k=5")
    assert embeddings.shape == (11, 384) and np.array_equal(np.load(out), embeddings)
    with open(tmp_path / "corpus.clusters.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["sentence"] for r in rows] == CORPUS
    label = [r["cluster"] for r in rows]
    for group in SAME_MEANING:
        assert len({label[i] for i in group}) == 1, f"{[CORPUS[i] for i in group]} split across clusters {label}"
    assert len(set(label)) == 5
    assert "k-means, k=5" in capsys.readouterr().out


def test_table_column_in_input_order_matches_model(tiny_model_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"id": i, "text": s}) + "\n" for i, s in enumerate(CORPUS[:4])))
    embeddings = run_embed(f"ckpt={tiny_model_file}", f"input={data}", "column=text", f"out={tmp_path / 'e.npy'}", "precision=fp32")
    expected = checkpoint.load(tiny_model_file).embed_texts(CORPUS[:4]).numpy()
    assert np.allclose(embeddings, expected, atol=1e-5)
    with pytest.raises(STSError, match=r"set column=NAME .*\['id', 'text'\]"):
        run_embed(f"ckpt={tiny_model_file}", f"input={data}", f"out={tmp_path / 'f.npy'}")
    with pytest.raises(STSError, match=r"missing column\(s\) \['body'\]"):
        run_embed(f"ckpt={tiny_model_file}", f"input={data}", "column=body", f"out={tmp_path / 'f.npy'}")


def test_errors_cross_encoder_blank_line_existing_output(tiny_cross_model_file: Path, tiny_model_file: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("one sentence\n")
    with pytest.raises(STSError, match="is a CrossEncoder.*no sentence embeddings.*bi-encoder"):
        run_embed(f"ckpt={tiny_cross_model_file}", f"input={corpus}", f"out={tmp_path / 'x.npy'}")
    corpus.write_text("one sentence\n\nthird\n")
    with pytest.raises(STSError, match="row 2: line is empty"):
        run_embed(f"ckpt={tiny_model_file}", f"input={corpus}", f"out={tmp_path / 'x.npy'}")
    (tmp_path / "x.npy").write_bytes(b"keep")
    with pytest.raises(STSError, match="already exists"):
        run_embed(f"ckpt={tiny_model_file}", f"input={corpus}", f"out={tmp_path / 'x.npy'}")
    assert (tmp_path / "x.npy").read_bytes() == b"keep"


def test_cli_csv_column_and_exit_2(tiny_model_file: Path, tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,sentence\n1,a cat sits\n2,a dog runs\n3,stocks fell\n")
    args = [str(ROOT / "embed.py"), f"ckpt={tiny_model_file}", "input=t.csv", "column=sentence", "out=t.npy", "cluster.k=2"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.load(tmp_path / "t.npy").shape == (3, 32) and (tmp_path / "t.clusters.csv").read_text().startswith("sentence,cluster\na cat sits,")
    result = run_cli([*args, "cluster.k=9", "overwrite=true"], tmp_path)
    assert result.returncode == 2 and "cluster.k=9: must be between 1 and the number of sentences (3)" in result.stderr


def test_written_a_chunk_at_a_time_and_nothing_half_written(tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """embed.py writes each chunk as the model yields it (memory holds one chunk), the file reads
    back as mine.py reads it; a failure mid-way leaves nothing under the output name."""
    from sts.api import Model
    from sts.data.embeddings import EmbeddingsFile

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    stream = Model.embed_stream
    monkeypatch.setattr(Model, "embed_stream", lambda self, sentences, **kw: stream(self, sentences, **{**kw, "chunk_size": 4}))
    embeddings = run_embed(f"ckpt={tiny_model_file}", f"input={corpus}", f"out={tmp_path / 'e.npy'}", "precision=fp32")
    expected = checkpoint.load(tiny_model_file).embed_texts(CORPUS).numpy()
    assert np.allclose(embeddings, expected, atol=1e-5)
    assert np.array_equal(np.concatenate(list(EmbeddingsFile(tmp_path / "e.npy", rows=11, width=32).chunks(5))), np.asarray(embeddings))

    def failing(self, sentences, **kw):
        yield from stream(self, sentences[:4], **kw)
        raise STSError("the encoder failed")

    monkeypatch.setattr(Model, "embed_stream", failing)
    with pytest.raises(STSError, match="the encoder failed"):
        run_embed(f"ckpt={tiny_model_file}", f"input={corpus}", f"out={tmp_path / 'f.npy'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "e.npy"]
