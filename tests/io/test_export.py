"""export.py: sentence-transformers / transformers / ONNX folders give our embeddings and scores
(an ONNX folder through sts.load, as hostile as any folder); sentence-transformers folders given as
encoder.name_or_path keep their pooling."""
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


CARD_SECTIONS = ("## Use", "## Intended use and limits", "## Training", "## Evaluation", "## Decision threshold", "## Calibration",
                 "## Other recorded results", "## Provenance")


def check_card(out: Path, ckpt: Path, fmt: str) -> None:
    """README.md: front matter the Hub reads (valid YAML, library, tags, data set, metrics with the
    model file's values), then every section, each fact as `sts.load(ckpt).info` gives it."""
    import yaml

    import sts

    text = (out / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    info = sts.load(ckpt).info
    assert meta["library_name"] == {"sentence-transformers": "sentence-transformers", "hf": "transformers", "onnx": "onnx"}[fmt]
    assert meta["datasets"] == ["sentence-transformers/stsb"] and meta["language"] == ["en"] and "sentence-similarity" in meta["tags"]
    results = meta["model-index"][0]["results"]
    assert [r["dataset"]["split"] for r in results] == ["test", "validation"]
    spearman = next(m for m in results[0]["metrics"] if m["type"] == "spearmanr")
    assert spearman["value"] == round(info["metrics"]["test/spearman"], 4)
    for section in CARD_SECTIONS:
        assert section in body, section
    run = info["run"]
    for fact in (f"{info['threshold']:.4f}", info["calibration"], run["command"], run["hardware"], run["git_commit"], "English only",
                 f"at most {info['max_length']} tokens", f"{100 * info['metrics']['test/spearman']:.2f}", f"{100 * info['metrics']['test/ece']:.2f}",
                 f"chosen at training by {info['training']['threshold_objective']}", f"{info['metrics']['train_seconds'] / 60:.1f} minutes"):
        assert str(fact) in body, fact


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
    if model_file == "tiny_model_file":  # a trained model's record; the loader still loads the folder with the card in it
        check_card(out, ckpt, "sentence-transformers")


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
    check_card(out, tiny_cross_model_file, fmt)
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


@pytest.fixture(scope="module")
def onnx_exports(tiny_model_file: Path, tiny_cross_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """format=onnx of the tiny bi- and cross-encoder, written once."""
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("onnx")
    return {name: run_export(ckpt, out / name, "onnx") for name, ckpt in (("tiny_model_file", tiny_model_file), ("tiny_cross_model_file", tiny_cross_model_file))}


@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_onnx_export_scores_as_the_model_file(model_file: str, onnx_exports: dict[str, Path], request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sts
    from sts.core import backends

    monkeypatch.setenv("STS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(backends, "export_graph", lambda *a: pytest.fail("re-exported the graph from torch"))
    out, ckpt = onnx_exports[model_file], request.getfixturevalue(model_file)
    meta = json.loads((out / "sts_onnx.json").read_text())
    assert {"model.onnx", "sts_onnx.json", "tokenizer_config.json", "README.md"} <= {p.name for p in out.iterdir()}
    check_card(out, ckpt, "onnx")
    assert meta["opset"] == backends.OPSET and meta["inputs"][:2] == ["input_ids", "attention_mask"] and "torch" in meta["versions"]
    torch_scores = sts.load(ckpt, precision="fp32").score(S1, S2, clip=False)
    model = sts.load(out)  # the exported graph, run by ONNX Runtime as it is (fp32)
    assert (model.info["backend"], model.info["precision"], model.architecture) == ("onnx", "fp32", meta["architecture"])
    assert model.threshold == pytest.approx(checkpoint.load(ckpt).threshold)
    np.testing.assert_allclose(model.score(S1, S2, clip=False), torch_scores, atol=1e-5)
    np.testing.assert_allclose(sts.load(out, backend="openvino", precision="fp32").score(S1, S2, clip=False), torch_scores, atol=1e-5)
    assert not (tmp_path / "cache").exists()  # read in place: nothing built, nothing cached
    if meta["architecture"] == "BiEncoder":
        np.testing.assert_allclose(model.embed(S1), sts.load(ckpt, precision="fp32").embed(S1), atol=1e-5)
    described = sts.describe(out)
    assert described.info() == model.info and described.architecture == model.architecture


def test_onnx_export_of_a_frozen_bi_encoder_keeps_its_head(tiny_encoder: str, tmp_path: Path) -> None:
    import sts

    torch.manual_seed(0)
    module = BiEncoder(encoder=AutoModel.from_pretrained(tiny_encoder), tokenizer=AutoTokenizer.from_pretrained(tiny_encoder), max_length=32,
                       freeze_encoder=True, head_hidden=16)
    ckpt = checkpoint.save(module, tmp_path / "frozen.pt")
    out = run_export(ckpt, tmp_path / "onnx", "onnx")
    assert (out / "head.safetensors").is_file() and json.loads((out / "sts_onnx.json").read_text())["head_hidden"] == 16
    np.testing.assert_allclose(sts.load(out).score(S1, S2), sts.load(ckpt, precision="fp32").score(S1, S2), atol=1e-5)


def _tampered(out: Path, damage: str) -> None:
    meta_path = out / "sts_onnx.json"
    meta = json.loads(meta_path.read_text())
    if damage == "missing graph":
        (out / "model.onnx").unlink()
    elif damage == "pickle":
        (out / "pytorch_model.bin").write_bytes(b"\x80\x04.")
    elif damage == "unknown field":
        meta["script"] = "rm -rf ~"
    elif damage == "inputs":
        meta["inputs"] = ["input_ids", "attention_mask", "token_type_ids"]
    else:
        meta[damage] = {"threshold": "high", "max_length": 0, "pooling": "attention", "encoder_config": {"model_type": "gpt2"}}[damage]
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("threshold", r"sts_onnx.json: field threshold='high' must be"),
        ("max_length", r"sts_onnx.json: field max_length=0 must be"),
        ("pooling", r"sts_onnx.json: field pooling='attention' must be one of"),
        ("encoder_config", r"sts_onnx.json: field encoder_config.model_type='gpt2' must be one of"),
        ("unknown field", r"sts_onnx.json: unknown field 'script'"),
        ("inputs", r"sts_onnx.json: field inputs=\[.*\] must be one of"),
        ("missing graph", r"model.onnx: missing"),
        ("pickle", r"pytorch_model.bin: refused: a .bin file"),
    ],
)
def test_a_tampered_onnx_export_is_refused_in_one_line(damage: str, message: str, onnx_exports: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    import sts

    out = tmp_path / "onnx"
    shutil.copytree(onnx_exports["tiny_model_file"], out)
    _tampered(out, damage)
    for read in (sts.load, sts.describe):
        with pytest.raises(STSError, match=message) as refused:
            read(out)
        assert "\n" not in str(refused.value)


def test_an_onnx_export_is_not_run_in_torch(onnx_exports: dict[str, Path]) -> None:
    import sts

    out = onnx_exports["tiny_cross_model_file"]
    for read in (lambda: sts.load(out, backend="torch"), lambda: sts.describe(out).info(backend="torch")):
        with pytest.raises(STSError, match=r"^backend=torch: .* is an ONNX export, whose network is only its graph \(model.onnx\); score it with backend=onnx or openvino"):
            read()
    with pytest.raises(STSError, match="an ONNX export and the bundled model carry their own"):
        sts.load(out, max_length=16)


def test_a_model_loaded_from_an_onnx_export_is_not_saved_as_a_model_file(onnx_exports: dict[str, Path], tmp_path: Path) -> None:
    import sts
    from sts.io import checkpoint

    with pytest.raises(STSError, match="has no torch weights to save"):
        checkpoint.save(sts.load(onnx_exports["tiny_model_file"]).module, tmp_path / "model.pt")
    assert not list(tmp_path.iterdir())


def test_predict_scores_with_an_onnx_export(onnx_exports: dict[str, Path], tiny_cross_model_file: Path, tmp_path: Path) -> None:
    import sts

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("id,a,b\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in enumerate(zip(S1, S2))))
    done = run_cli([str(ROOT / "predict.py"), f"ckpt={onnx_exports['tiny_cross_model_file']}", f"input={pairs}", f"output={tmp_path / 'out.csv'}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = [float(line.split(",")[-2]) for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    np.testing.assert_allclose(scores, sts.load(tiny_cross_model_file, precision="fp32").score(S1, S2), atol=2e-6)


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
