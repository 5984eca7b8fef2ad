"""export.py: sentence-transformers / transformers / ONNX folders give our embeddings and scores;
sentence-transformers folders given as encoder.name_or_path keep their pooling."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from sts.io import checkpoint
from sts.errors import STSError
from sts.commands.export import export
from sts.io.export import sequence_classifier
from sts.core import BiEncoder
from sts.io.encoders import sentence_transformers_pooling
from sts.training.fit import build_model

from conftest import ROOT, compose_config
from helpers import run_cli

S1 = ["A man is playing a guitar.", "A cat sleeps on the warm windowsill all afternoon.", "Stocks fell.", "A woman slices an onion."]
S2 = ["A man plays guitar.", "A dog runs in the park.", "Markets dropped sharply today.", "Someone is cutting an onion."]


def run_export(ckpt: Path, out: Path, fmt: str) -> Path:
    return export(compose_config("export", [f"ckpt={ckpt}", f"format={fmt}", f"out={out}"]))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def cls_model_file(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) bi-encoder with cls pooling, to show the pooling travels both ways."""
    torch.manual_seed(0)
    module = BiEncoder(encoder=AutoModel.from_pretrained(tiny_encoder), tokenizer=AutoTokenizer.from_pretrained(tiny_encoder), max_length=32, pooling="cls")
    return checkpoint.save(module, tmp_path_factory.mktemp("cls") / "model.pt")


@pytest.mark.parametrize("model_file", ["tiny_model_file", "cls_model_file"])
def test_bi_encoder_to_sentence_transformers_same_embeddings(model_file: str, request, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    ckpt = request.getfixturevalue(model_file)
    out = run_export(ckpt, tmp_path / "st", "sentence-transformers")
    ours = checkpoint.load(ckpt).embed_texts(S1 + S2).numpy()
    theirs = SentenceTransformer(str(out), device="cpu").encode(S1 + S2, convert_to_numpy=True)
    assert cosine(ours, theirs).min() >= 0.9999


def test_sentence_transformers_folder_pooling_is_honoured(cls_model_file: Path, tiny_cfg, tiny_encoder: str, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    exported = run_export(cls_model_file, tmp_path / "ours", "sentence-transformers")  # legacy pooling flags
    native = tmp_path / "native"  # what sentence-transformers 6 itself writes: one pooling_mode key
    SentenceTransformer(modules=[Transformer(tiny_encoder), Pooling(32, pooling_mode="max")], device="cpu").save(str(native))
    assert "pooling_mode" in json.loads((native / "1_Pooling" / "config.json").read_text())
    assert sentence_transformers_pooling(str(exported)) == "cls" and sentence_transformers_pooling(str(native)) == "max"
    assert build_model(tiny_cfg(f"encoder.name_or_path={exported}")).pooling == "cls"
    assert build_model(tiny_cfg(f"encoder.name_or_path={native}")).pooling == "max"
    assert build_model(tiny_cfg(f"encoder.name_or_path={native}", "model.pooling=mean")).pooling == "mean"


@pytest.mark.parametrize("fmt", ["sentence-transformers", "hf"])
def test_cross_encoder_same_scores_in_sentence_transformers_and_transformers(fmt: str, tiny_cross_model_file: Path, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification

    out = run_export(tiny_cross_model_file, tmp_path / fmt, fmt)
    ours = checkpoint.load(tiny_cross_model_file).score_texts(S1, S2)
    st_scores = CrossEncoder(str(out), device="cpu").predict(list(zip(S1, S2)), convert_to_numpy=True)
    assert np.abs(st_scores - ours).max() <= 1e-4
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert model.config.num_labels == 1
    enc = AutoTokenizer.from_pretrained(out)(S1, S2, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hf_scores = torch.sigmoid(model(**enc).logits.squeeze(-1)).numpy()
    assert np.abs(hf_scores - ours).max() <= 1e-4


def test_mean_pooled_cross_encoder_is_not_exported_as_a_cls_classifier(tiny_cross_model_file: Path, tmp_path: Path) -> None:
    module = checkpoint.load(tiny_cross_model_file)
    module.pooling = "mean"  # their sequence-classification heads read [CLS] only: scores would differ
    with pytest.raises(STSError, match="pooling='mean'"):
        sequence_classifier(module)


def test_exporting_a_cross_encoder_that_scores_both_orders_warns_it_scores_one(tiny_cross_model_file: Path, tmp_path: Path) -> None:
    module = checkpoint.load(tiny_cross_model_file)
    module.both_orders = True
    both = checkpoint.save(module, tmp_path / "both.pt")
    with pytest.warns(UserWarning, match="both orders"):
        run_export(both, tmp_path / "hf", "hf")


@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_onnx_graph_same_scores(model_file: str, request, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    ckpt = request.getfixturevalue(model_file)
    out = run_export(ckpt, tmp_path / "onnx", "onnx")
    meta = json.loads((out / "sts_onnx.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(out)
    if meta["architecture"] == "CrossEncoder":
        enc = tokenizer(S1, S2, padding=True, truncation=True, return_tensors="np", return_token_type_ids=True)
        feed = {k: enc[k] for k in meta["inputs"]}
    else:
        feed = {f"{k}{side}": v for side, texts in ((1, S1), (2, S2)) for k, v in tokenizer(texts, padding=True, truncation=True, return_tensors="np").items() if k != "token_type_ids"}
    session = ort.InferenceSession(str(out / "model.onnx"))
    scores = session.run(["score"], {k: v.astype(np.int64) for k, v in feed.items()})[0]
    assert np.abs(scores - checkpoint.load(ckpt).score_texts(S1, S2)).max() <= 1e-4


def test_refuses_existing_folder_and_unknown_format(tiny_model_file: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(STSError, match="already exists"):
        run_export(tiny_model_file, tmp_path / "full", "hf")
    assert (tmp_path / "full" / "keep.txt").is_file()
    with pytest.raises(STSError, match="format='gguf'"):
        run_export(tiny_model_file, tmp_path / "x", "gguf")


def test_cli_exports_hf(tiny_model_file: Path, tmp_path: Path) -> None:
    result = run_cli([str(ROOT / "export.py"), f"ckpt={tiny_model_file}", "format=hf", f"out={tmp_path / 'hf'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote BiEncoder as hf" in result.stdout and (tmp_path / "hf" / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
