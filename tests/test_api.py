"""sts.load / Model: the bundled zero-shot model, model files, exported folders; score, label,
embed and DataFrames in and out; every refusal is one STSError."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import sts
from sts.io import checkpoint
from sts.api import Model
from sts.errors import STSError
from sts.commands.export import export

from conftest import ROOT, compose_config
from helpers import Evil

S1 = ["the cat ate the mouse", "the dog chased the cat", "the king ate the cake"]
S2 = ["the mouse was eaten by the cat", "the alligator is fat", "the cake was ingested by the king"]


@pytest.fixture(scope="module")
def bundled() -> Model:
    return sts.load()


def test_bundled_model_labels_the_example_pairs_offline(bundled: Model) -> None:
    labels = bundled.label(S1, S2)
    assert isinstance(labels, np.ndarray) and labels.tolist() == [1, 0, 1]
    assert bundled.architecture == "BiEncoder" and abs(bundled.threshold - 0.806) < 1e-3
    info = bundled.info
    assert info["source"] == "bundled" and info["encoder"]["layers"] == 6 and info["metrics"]["test/spearman"] > 0.8


def test_inputs_lists_tuples_arrays_and_threshold(bundled: Model) -> None:
    scores = bundled.score(S1, S2)
    assert scores.dtype == np.float32 and scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()
    np.testing.assert_allclose(bundled.score(tuple(S1), np.array(S2)), scores, atol=1e-6)
    assert bundled.score(S1[0], S2[0]).shape == (1,)
    assert bundled.label(S1, S2, threshold=0.0).tolist() == [1, 1, 1]
    assert bundled.label(S1, S2, threshold=1.0).tolist() == [0, 0, 0]
    assert bundled.score([], []).shape == (0,)


def test_dataframe_in_labelled_copy_out(bundled: Model) -> None:
    seed = pd.DataFrame({"line1": S1, "line2": S2}, index=pd.Index([7, 3, 5], name="index"))
    before = seed.copy()
    out = bundled.label(seed)
    pd.testing.assert_frame_equal(seed, before)  # the user's table is not touched
    assert list(out.columns) == ["line1", "line2", "score", "lbl"] and out.index.tolist() == [7, 3, 5]
    assert out["lbl"].tolist() == [1, 0, 1]
    np.testing.assert_allclose(out["score"].to_numpy(), bundled.score(S1, S2), atol=1e-6)
    renamed = seed.rename(columns={"line1": "a", "line2": "b"})
    assert bundled.score(renamed, columns=("a", "b"))["lbl"].tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.score(S1, S2[:2]), "sentences1 has 3 sentences but sentences2 2"),
        (lambda m: m.score(S1, ["a", " ", "b"]), "sentences2[1]: is empty"),
        (lambda m: m.score(S1, ["a", 3, "b"]), "sentences2[1]: is not text"),
        (lambda m: m.score(S1), "take two lists"),
        (lambda m: m.score({"a": 1}, S2), "expected a list of sentences"),
        (lambda m: m.label(S1, S2, threshold=1.5), "must be between 0 and 1"),
        (lambda m: m.label(pd.DataFrame({"x": S1})), "no column(s) ['line1', 'line2']"),
        (lambda m: m.label(pd.DataFrame({"line1": S1, "line2": S2, "lbl": 0})), "already has column(s) ['lbl']"),
        (lambda m: m.label(pd.DataFrame({"line1": S1, "line2": [None, "a", "b"]})), "line2[0]: is not text"),
    ],
)
def test_bad_input_is_one_error(bundled: Model, call, message: str) -> None:
    with pytest.raises(STSError, match=None) as e:
        call(bundled)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_embed_bi_encoder_and_refused_for_cross_encoder(bundled: Model, tiny_cross_model_file: Path) -> None:
    embeddings = bundled.embed(S1)
    assert embeddings.shape == (3, 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(bundled.embed(S1[0])[0], embeddings[0], atol=1e-5)
    with pytest.raises(STSError, match="needs sentence embeddings, and a CrossEncoder has none"):
        sts.load(tiny_cross_model_file).embed(S1)


def test_model_file_scores_as_the_module_does(tiny_model_file: Path, tiny_cross_model_file: Path) -> None:
    for path in (tiny_model_file, tiny_cross_model_file):
        model = sts.load(path, precision="fp32")
        module = checkpoint.load(path)
        np.testing.assert_allclose(model.score(S1, S2), module.score_texts(S1, S2), atol=1e-6)
        assert model.threshold == pytest.approx(module.threshold)
        assert model.info["source"] == str(path) and model.info["trained_on"] == "stsb" and "val/spearman" in model.info["metrics"]


@pytest.mark.parametrize("fmt", ["hf", "sentence-transformers"])
@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_exported_folder_loads_back_with_the_same_scores(model_file: str, fmt: str, request, tmp_path: Path) -> None:
    ckpt = request.getfixturevalue(model_file)
    out = export(compose_config("export", [f"ckpt={ckpt}", f"format={fmt}", f"out={tmp_path / 'out'}"]))
    ours, folder = sts.load(ckpt), sts.load(out)
    assert folder.architecture == ours.architecture
    np.testing.assert_allclose(folder.score(S1, S2), ours.score(S1, S2), atol=1e-5)
    assert folder.threshold == pytest.approx(ours.threshold) and folder.info["threshold_source"] == "export"
    assert folder.module.calibration == ours.module.calibration is not None


@pytest.mark.parametrize("source", ["bundled", "tiny_model_file", "tiny_cross_model_file"])
def test_calibrated_scores_are_probabilities_with_the_same_labels(source: str, request) -> None:
    """calibrated=True: score is the model's probability of "similar", the threshold is mapped
    through the same map, and every label (score, label, DataFrame, mine) stays as it was."""
    path = None if source == "bundled" else request.getfixturevalue(source)
    raw, calibrated = sts.load(path, precision="fp32"), sts.load(path, precision="fp32", calibrated=True)
    calibration = raw.module.calibration
    assert calibration is not None and calibrated.info["calibration"] == calibration.describe() and calibrated.info["calibrated"]
    assert calibrated.threshold == pytest.approx(calibration.at(raw.threshold)) and raw.threshold == raw.module.threshold
    first, second = S1 * 3 + ["a man plays a guitar"], S2 + S1 + list(reversed(S2)) + ["a man is playing the guitar"]
    probabilities = calibrated.score(first, second)
    np.testing.assert_allclose(probabilities, calibration(torch.from_numpy(raw.score(first, second, clip=False))).numpy(), atol=1e-6)
    assert ((probabilities >= calibrated.threshold) == (raw.score(first, second) >= raw.threshold)).all()
    assert calibrated.label(first, second).tolist() == raw.label(first, second).tolist()
    frame = calibrated.score(pd.DataFrame({"line1": first, "line2": second}))
    assert frame["lbl"].tolist() == raw.label(first, second).tolist()
    assert sts.describe(path).info(precision="fp32", calibrated=True) == calibrated.info
    if raw.architecture == "BiEncoder":
        mined = {(p.sentence1, p.sentence2): p.lbl for p in calibrated.mine(first + second, top_k=3)}
        assert mined == {(p.sentence1, p.sentence2): p.lbl for p in raw.mine(first + second, top_k=3)}


def test_calibrated_is_refused_for_a_model_without_calibration(tiny_model_file: Path, tmp_path: Path) -> None:
    module = checkpoint.load(tiny_model_file)
    module.calibration = None
    bare = checkpoint.save(module, tmp_path / "bare.pt")
    assert sts.load(bare).info["calibration"] is None
    for call in (lambda: sts.load(bare, calibrated=True), lambda: sts.describe(bare).info(calibrated=True)):
        with pytest.raises(STSError, match="^calibrated=true: this model has no calibration; fit one on dev with `python -m sts.commands.calibrate"):
            call()


def test_foreign_encoder_folder_is_an_uncalibrated_bi_encoder(tiny_encoder: str) -> None:
    model = sts.load(tiny_encoder, pooling="cls", max_length=16)
    assert model.architecture == "BiEncoder" and model.info["pooling"] == "cls" and model.info["max_length"] == 16
    assert model.threshold == 0.5 and "not calibrated" in model.info["threshold_source"]


def test_folder_with_pickled_weights_is_refused_and_runs_nothing(tiny_encoder: str, tmp_path: Path) -> None:
    import shutil


    folder = tmp_path / "evil-folder"
    shutil.copytree(tiny_encoder, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"x": Evil(str(tmp_path / "pwned"))}, folder / "pytorch_model.bin")
    with pytest.raises(STSError) as e:
        sts.load(folder)
    assert "holds objects other than tensors" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "pwned").exists()


def test_load_refusals_are_one_line(tmp_path: Path, tiny_model_file: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "evil.pt").write_bytes(b"PK\x03\x04 not really")
    cases = {
        str(tmp_path / "missing.pt"): "checkpoint not found",
        str(tmp_path / "empty"): "a folder without config.json",
        str(tmp_path / "evil.pt"): "evil.pt",
    }
    for path, message in cases.items():
        with pytest.raises(STSError) as e:
            sts.load(path)
        assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
    with pytest.raises(STSError, match="apply to an encoder folder"):
        sts.load(tiny_model_file, pooling="cls")
    with pytest.raises(STSError, match="precision='fp16'"):
        sts.load(tiny_model_file, precision="fp16")


def test_both_orders_override_for_cross_encoders(tiny_cross_model_file: Path, tiny_model_file: Path) -> None:
    both = sts.load(tiny_cross_model_file, both_orders=True)
    forward, backward = sts.load(tiny_cross_model_file, both_orders=False).score(S1, S2), sts.load(tiny_cross_model_file, both_orders=False).score(S2, S1)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    expected = 1 / (1 + np.exp(-(logit(forward.astype(np.float64)) + logit(backward.astype(np.float64))) / 2))
    np.testing.assert_allclose(both.score(S1, S2), expected, atol=1e-5)
    with pytest.raises(STSError, match="symmetric already"):
        sts.load(tiny_model_file, both_orders=True)


@pytest.mark.parametrize("source", ["bundled", "tiny_model_file", "tiny_cross_model_file", "tiny_encoder"])
def test_describe_reads_what_load_builds_without_the_network(source: str, request) -> None:
    """A server's HTTP process describes the model it serves: the same /info, inputs and width as
    the loaded model, with no network built."""
    path = None if source == "bundled" else request.getfixturevalue(source)
    described, loaded = sts.describe(path), sts.load(path)
    assert described.info() == loaded.info
    assert described.dimensions == (None if loaded.architecture == "CrossEncoder" else loaded.module.encoder.config.hidden_size)
    assert described.inputs.pairs(S1, S2) == loaded.module.inputs.pairs(S1, S2)


def test_describe_refuses_what_load_refuses(tmp_path: Path, tiny_model_file: Path, tiny_cross_model_file: Path) -> None:
    (tmp_path / "evil.pt").write_bytes(b"PK\x03\x04 not really")
    for path, kwargs, message in [(tmp_path / "missing.pt", {}, "checkpoint not found"), (tmp_path / "evil.pt", {}, "evil.pt"),
                                  (tiny_model_file, {"pooling": "cls"}, "apply to an encoder folder"),
                                  (tiny_model_file, {"both_orders": True}, "symmetric already")]:
        with pytest.raises(STSError, match=message):
            sts.describe(path, **kwargs)
    assert sts.describe(tiny_cross_model_file, both_orders=True).info()["both_orders"] is True


def test_chunks_and_progress_change_no_score(capsys: pytest.CaptureFixture) -> None:
    """score and embed run in chunks with a progress bar (evaluate.py and embed.py use it): the
    numbers are those of one call (fp32 torch: other precisions may depend on batch shapes)."""
    bundled = sts.load(precision="fp32", backend="torch")
    whole = bundled.score(S1, S2)
    np.testing.assert_allclose(bundled.score(S1, S2, chunk_size=2, progress=True), whole, atol=1e-6)
    assert "scoring" in capsys.readouterr().err
    np.testing.assert_allclose(bundled.embed(S1, chunk_size=1, progress=True), bundled.embed(S1), atol=1e-6)
    assert "3/3" in capsys.readouterr().err
    assert bundled.score([], []).shape == (0,)


def test_embed_stream_equals_embed_and_reads_lazily(tiny_cross_model_file: Path) -> None:
    """The streaming form yields chunk_size rows at a time from any iterable (a generator is read
    only as far as the chunks taken), and its chunks together are embed()'s array."""
    model = sts.load(precision="fp32", backend="torch")
    sentences = [*S1, *S2, "a seventh sentence"]
    read: list[str] = []

    def lines():
        for sentence in sentences:
            read.append(sentence)
            yield sentence

    stream = model.embed_stream(lines(), chunk_size=3)
    first = next(stream)
    assert first.shape == (3, 384) and len(read) == 3
    chunks = [first, *stream]
    assert [len(c) for c in chunks] == [3, 3, 1]
    np.testing.assert_allclose(np.concatenate(chunks), model.embed(sentences), atol=1e-5)  # fp32; batches padded differently
    with pytest.raises(STSError, match=r"^sentences\[4\]: is empty$"):  # numbered in the whole input, not the chunk
        list(model.embed_stream(iter(["a", "b", "c", "d", " "]), chunk_size=3))
    with pytest.raises(STSError, match="needs sentence embeddings"):
        sts.load(tiny_cross_model_file).embed_stream(S1)  # refused when asked, not when first read
    assert list(model.embed_stream([])) == []


@pytest.mark.parametrize("settings", [{"backend": "onnx"}, {"backend": "onnx", "quantize": "none"}, {"backend": "openvino", "precision": "fp32"},
                                      {"backend": "torch", "precision": "fp32"}])
def test_describe_reports_the_backend_and_precision_load_runs(settings: dict, tiny_model_file: Path) -> None:
    """A server's /info comes from describe: it must say what its workers run (sts.core.scorer.plan)."""
    described, loaded = sts.describe(tiny_model_file).info(**settings), sts.load(tiny_model_file, **settings).info
    assert (described["backend"], described["precision"]) == (loaded["backend"], loaded["precision"])
    padded = sts.describe(tiny_model_file).info(**settings, pad_to_multiple_of=8), sts.load(tiny_model_file, **settings, pad_to_multiple_of=8).info
    assert (described["pad_to_multiple_of"], padded[0]["pad_to_multiple_of"], padded[1]["pad_to_multiple_of"]) == (1, 8, 8)


@pytest.mark.parametrize(
    ("flags", "model_file", "expected"),
    [
        ("avx512_vnni avx512f", "tiny_model_file", ("openvino", "int8")),
        ("avx512_vnni avx512f", "tiny_cross_model_file", ("openvino", "fp32")),
        ("avx2", "tiny_model_file", ("onnx", "int8")),
        ("avx2", "tiny_cross_model_file", ("openvino", "fp32")),
    ],
)
def test_describe_on_a_faked_host_reports_its_backend(flags: str, model_file: str, expected: tuple, request, monkeypatch: pytest.MonkeyPatch) -> None:
    """backend=auto on a CPU with VNNI and no AMX (faked): OpenVINO, int8 for a bi-encoder and fp32
    for a cross-encoder; on an AVX2-only CPU: ONNX Runtime's int8 for a bi-encoder, OpenVINO's fp32
    graph for a cross-encoder."""
    from sts.core import precision

    monkeypatch.delenv("STS_BACKEND")
    monkeypatch.setattr(precision, "_announced", set())
    monkeypatch.setattr(precision, "cpu", lambda: {"model": "test", "flags": flags.split(), "amx": False})
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(precision, "int8_runtime", lambda: True)
    info = sts.describe(request.getfixturevalue(model_file)).info()
    assert (info["backend"], info["precision"]) == expected


LONG = " ".join(f"the king number {i} ate a cake in the hall." for i in range(20))


@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_long_inputs_chunk_reads_long_texts_whole_and_short_ones_as_before(model_file: str, request) -> None:
    path = request.getfixturevalue(model_file)
    truncate = sts.load(path, precision="fp32")
    chunk = sts.load(path, precision="fp32", long_inputs="chunk")
    assert (truncate.info["long_inputs"], chunk.info["long_inputs"], sts.describe(path).info(long_inputs="chunk")["long_inputs"]) == ("truncate", "chunk", "chunk")
    np.testing.assert_array_equal(chunk.score(S1, S2), truncate.score(S1, S2))
    pairs = [LONG, S1[0]], [S2[2], S2[0]]
    scores, truncated = chunk.score(*pairs), truncate.score(*pairs)
    assert scores[1] == truncated[1]
    module = checkpoint.load(path)
    np.testing.assert_allclose(scores, module.score_texts(*pairs, long=sts.LongInputs("chunk")), atol=1e-6)
    mean = sts.load(path, precision="fp32", long_inputs=sts.LongInputs("chunk", reduce="mean", overlap=0)).score(*pairs)
    assert mean[0] not in (scores[0], truncated[0]) and mean[1] == scores[1]
    if chunk.architecture == "CrossEncoder":
        assert scores[0] >= truncated[0] - 1e-6  # the first window pair is the truncated pair: max takes it or a better one
    else:
        assert scores[0] != truncated[0]
        embedded = chunk.embed([LONG, S1[0]])
        np.testing.assert_allclose(embedded, module.embed_texts([LONG, S1[0]], long=sts.LongInputs("chunk")).numpy(), atol=1e-6)
        np.testing.assert_array_equal(embedded[1], truncate.embed([S1[0]])[0])


def test_long_inputs_refusals_are_one_line_before_a_model_is_read(tiny_model_file: Path) -> None:
    with pytest.raises(STSError, match=r"^long_inputs='paragraphs' must be one of truncate, chunk$"):
        sts.load("no/such/model.pt", long_inputs="paragraphs")
    with pytest.raises(STSError, match=r"^chunk_overlap=30: must be less than this model's window of 30 tokens"):
        sts.load(tiny_model_file, long_inputs=sts.LongInputs("chunk", overlap=30))
    with pytest.raises(STSError, match=r"at most chunk_max_windows=2 per text \(raise it, or long_inputs=truncate\)$"):
        sts.load(tiny_model_file, long_inputs=sts.LongInputs("chunk", max_windows=2)).score([LONG], [S1[0]])
