"""backend=onnx | openvino: ONNX Runtime or OpenVINO stands in for the network pass only, so scores follow torch's
(exactly for the fp32 graph, closely for int8), the graph is built once per weights and settings,
and every misuse is one clear error."""
from pathlib import Path

import numpy as np
import pytest
import torch

import sts
from sts.core import backends
from sts.config import scoring_settings
from sts.errors import STSError

from conftest import ROOT, compose_config
from helpers import run_cli

S1 = ["the cat ate the mouse", "the dog chased the cat", "the king ate the cake", "A man plays a guitar.", "the cat ate the mouse"]
S2 = ["the mouse was eaten by the cat", "the alligator is fat", "the cake was ingested by the king", "A man plays a guitar.", "a dog barks"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_fp32_graph_scores_as_torch_and_int8_close(model_file: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model_file)
    torch_scores = sts.load(path, precision="fp32").score(S1, S2, clip=False)
    fp32 = sts.load(path, backend="onnx", quantize="none")
    assert fp32.info["backend"] == "onnx" and fp32.info["precision"] == "fp32"
    np.testing.assert_allclose(fp32.score(S1, S2, clip=False), torch_scores, atol=1e-5)
    int8 = sts.load(path, backend="onnx")
    assert int8.info["precision"] == "int8"
    scores = int8.score(S1, S2, clip=False)
    assert np.abs(scores - torch_scores).max() < 0.05 and not np.allclose(scores, torch_scores, atol=1e-7)  # quantized, and close


@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_long_inputs_chunk_runs_its_windows_through_the_graph(model_file: str, request: pytest.FixtureRequest) -> None:
    """The windows are more token sequences of at most max_length for the same graph; their pooling
    (or reduction) is the torch code every backend shares, so the fp32 graph scores as torch does."""
    path = request.getfixturevalue(model_file)
    long = " ".join(f"the cat number {i} ate the mouse." for i in range(20))
    first, second = [long, *S1], [S2[0], *S2]
    chunk = sts.LongInputs("chunk", reduce="mean")  # a cross-encoder's max may be the first window pair, the truncated one
    torch_scores = sts.load(path, precision="fp32", long_inputs=chunk).score(first, second, clip=False)
    graph = sts.load(path, backend="onnx", quantize="none", long_inputs=chunk)
    np.testing.assert_allclose(graph.score(first, second, clip=False), torch_scores, atol=1e-5)
    assert sts.load(path, backend="onnx", quantize="none").score(first[:1], second[:1], clip=False)[0] != torch_scores[0]


@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_openvino_runs_the_fp32_graph_at_the_scoring_precision(model_file: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    path = request.getfixturevalue(model_file)
    torch_scores = sts.load(path, precision="fp32").score(S1, S2, clip=False)
    fp32 = sts.load(path, backend="openvino", precision="fp32")
    assert fp32.info["backend"] == "openvino" and fp32.info["precision"] == "fp32"
    assert fp32.scorer.encode.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    np.testing.assert_allclose(fp32.score(S1, S2, clip=False), torch_scores, atol=1e-5)
    bf16 = sts.load(path, backend="openvino", precision="bf16")
    ran = bf16.scorer.encode.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # f32 on CPUs without bf16
    assert bf16.info["precision"] == {"bf16": "bf16", "f32": "fp32"}[ran]  # what runs, read back from OpenVINO, on any host
    assert np.abs(bf16.score(S1, S2, clip=False) - torch_scores).max() < 0.05
    monkeypatch.setattr(sts.core.precision, "native_bf16", lambda device: None)  # auto follows the hardware, as torch does
    assert sts.load(path, backend="openvino").info["precision"] == "fp32"


def test_a_precision_the_cpu_cannot_give_is_said_and_not_claimed(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(backends, "compiled_precision", lambda compiled: "fp32")  # a CPU without bf16: OpenVINO compiles f32
    with caplog.at_level("WARNING", logger="sts.core.backends"):
        model = sts.load(tiny_model_file, backend="openvino", precision="bf16")
    assert model.info["precision"] == "fp32"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("backend=openvino precision=bf16: OpenVINO compiled") and "scores are fp32" in said[0]


@pytest.mark.parametrize("model_file", ["tiny_model_file", "tiny_cross_model_file"])
def test_auto_scores_in_openvino_int8_on_a_cpu_without_bf16(model_file: str, request: pytest.FixtureRequest, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = request.getfixturevalue(model_file)
    monkeypatch.delenv("STS_BACKEND")
    monkeypatch.setattr(sts.core.precision, "_announced", set())
    monkeypatch.setattr(sts.core.precision, "native_bf16", lambda device: None)  # a CPU with VNNI and without AMX
    monkeypatch.setattr(sts.core.precision, "int8_dot_products", lambda: "avx512_vnni")
    int8 = sts.load(path, backend="openvino", quantize="static")
    assert int8.info["backend"] == "openvino" and int8.info["precision"] == "int8"
    assert sorted(p.suffix for p in cache.iterdir()) == [".bin", ".sha256", ".xml"]  # NNCF's IR, cached and checked
    torch_scores = sts.load(path, precision="fp32").score(S1, S2, clip=False)
    scores = int8.score(S1, S2, clip=False)
    assert np.abs(scores - torch_scores).max() < 0.05 and not np.allclose(scores, torch_scores, atol=1e-7)  # quantized, and close
    auto = sts.load(path)  # int8 for a bi-encoder, OpenVINO's fp32 graph for a cross-encoder (tests/test_precision.py)
    cross = model_file == "tiny_cross_model_file"
    assert (auto.info["backend"], auto.info["precision"]) == ("openvino", "fp32" if cross else "int8")
    monkeypatch.setattr(sts.core.precision, "int8_dot_products", lambda: None)  # AVX2 only: ONNX Runtime's int8 for a bi-encoder
    avx2 = sts.load(path)
    assert (avx2.info["backend"], avx2.info["precision"]) == (("openvino", "fp32") if cross else ("onnx", "int8"))
    assert np.abs(avx2.score(S1, S2, clip=False) - torch_scores).max() < 0.05
    monkeypatch.setattr(sts.core.precision, "onnx_runtime", lambda: False)  # without the onnx extra: OpenVINO's fp32 graph
    plain = sts.load(path)
    assert (plain.info["backend"], plain.info["precision"]) == ("openvino", "fp32")
    np.testing.assert_allclose(plain.score(S1, S2, clip=False), torch_scores, atol=1e-5)
    monkeypatch.setattr(backends.OpenVinoEncoder, "_build", lambda self, tmp: pytest.fail("rebuilt a cached graph"))
    np.testing.assert_array_equal(sts.load(path, backend="openvino", quantize="static").score(S1, S2, clip=False), scores)
    assert sts.load(path, precision="fp32").info["backend"] == "torch"  # an explicit precision keeps torch
    monkeypatch.setattr(sts.core.precision, "native_bf16", lambda device: "AMX")
    assert sts.load(path).info["backend"] == "torch"


def test_int8_weights_never_saturate_where_the_cpu_has_no_int8_dot_products(tiny_model_file: Path, tiny_cross_model_file: Path, cache: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Without VNNI, ONNX Runtime's u8 x s8 kernel (vpmaddubsw) sums two products in 16 bits and
    saturates: a bi-encoder's s8 weights keep 7 bits there ([-64, 64]) and a cross-encoder's are
    u8; with VNNI both are s8 over [-127, 127]. Each format is its own cache entry. (quantize=static
    takes its format from the same attribute.)"""
    import onnx
    import onnxruntime
    from onnx import numpy_helper

    from sts.io import checkpoint

    found = {}
    for model_file in (tiny_model_file, tiny_cross_model_file):
        module = checkpoint.load(model_file)
        for host, dot_products in [("vnni", "avx512_vnni"), ("avx2", None)]:
            monkeypatch.setattr(sts.core.precision, "int8_dot_products", lambda: dot_products)
            encoder = backends.OnnxEncoder(module, "dynamic")
            graph = onnx.load(str(encoder._cached_graph(f"onnxruntime {onnxruntime.__version__}"))).graph
            weights = [t for t in graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and len(t.dims) == 2]
            types = {onnx.TensorProto.DataType.Name(t.data_type) for t in weights}
            widest = max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max()) for t in weights)
            found[type(module).__name__, host] = (encoder.weights, types, widest > 64)
            batch = encoder._features(S1)
            with torch.no_grad():
                np.testing.assert_allclose(encoder(batch).numpy(), module.eval().encode(batch).numpy(), atol=0.1)  # int8, and close
    assert found == {("BiEncoder", "vnni"): ("s8", {"INT8"}, True), ("BiEncoder", "avx2"): ("s8 7-bit", {"INT8"}, False),
                     ("CrossEncoder", "vnni"): ("s8", {"INT8"}, True), ("CrossEncoder", "avx2"): ("u8", {"UINT8"}, True)}
    assert len(list(cache.glob("*-dynamic.onnx"))) == 4


def test_static_quantization_is_calibrated_on_the_given_sentences(tiny_model_file: Path, tmp_path: Path, cache: Path) -> None:
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(f"sentence {i} about a {w}" for i, w in enumerate(["cat", "dog", "king", "cake", "guitar"] * 4)) + "\n")
    settings = compose_config("predict", ["input=x.csv", "backend=onnx", "quantize=static", f"calibration={calibration}"])
    model = sts.load(tiny_model_file, **scoring_settings(settings))
    assert np.abs(model.score(S1, S2) - sts.load(tiny_model_file, precision="fp32").score(S1, S2)).max() < 0.1
    assert len(list(cache.glob("*-static.onnx"))) == 1
    sts.load(tiny_model_file, backend="onnx", quantize="static")  # the default calibration sample: another graph
    assert len(list(cache.glob("*-static.onnx"))) == 2


def test_graph_is_built_once_and_embeddings_come_from_it(tiny_model_file: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = sts.load(tiny_model_file, backend="onnx", quantize="none")
    built = sorted(p.suffix for p in cache.iterdir())
    assert built == [".onnx", ".sha256"] and not [p for p in cache.iterdir() if p.is_dir()]  # the graph and its digests, no temporary folder left
    monkeypatch.setattr(backends.OnnxEncoder, "_build", lambda self, tmp: pytest.fail("rebuilt a cached graph"))
    again = sts.load(tiny_model_file, backend="onnx", quantize="none")
    np.testing.assert_allclose(again.embed(S1), sts.load(tiny_model_file, precision="fp32").embed(S1), atol=1e-5)
    np.testing.assert_array_equal(again.score(S1, S2), first.score(S1, S2))


def test_misuse_is_one_clear_error(tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(STSError, match="backend='tensorrt'"):
        sts.load(tiny_model_file, backend="tensorrt")
    with pytest.raises(STSError, match="quantize='int4'"):
        sts.load(tiny_model_file, backend="onnx", quantize="int4")
    with pytest.raises(STSError, match="backend=onnx runs on the CPU"):
        sts.load(tiny_model_file, backend="onnx", device="cuda")
    with pytest.raises(STSError, match="backend=openvino quantize=dynamic: OpenVINO runs the fp32 graph"):
        sts.load(tiny_model_file, backend="openvino", quantize="dynamic")
    monkeypatch.setenv("STS_BACKEND", "tensorrt")
    with pytest.raises(STSError, match="STS_BACKEND='tensorrt': choose one of torch, onnx, openvino"):
        sts.load(tiny_model_file)
    monkeypatch.setenv("STS_BACKEND", "torch")
    short = tmp_path / "short.txt"
    short.write_text("one\ntwo\n")
    with pytest.raises(STSError, match=r"short.txt: 2 non-empty lines"):
        backends.read_calibration(str(short))
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("STS_CACHE", str(blocked))
    with pytest.raises(STSError, match="cannot write the ONNX cache there"):
        sts.load(tiny_model_file, backend="onnx")


def test_predict_with_the_onnx_backend(tiny_model_file: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("id,a,b\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in enumerate(zip(S1, S2))))
    done = run_cli([str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", f"input={pairs}", "backend=onnx", "quantize=none", f"output={tmp_path / 'out.csv'}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = [float(line.split(",")[-2]) for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    np.testing.assert_allclose(scores, sts.load(tiny_model_file, precision="fp32").score(S1, S2), atol=2e-6)
    # two processes (Lightning's predict loop) score through the same scorer, backend included
    two = run_cli([str(ROOT / "predict.py"), f"ckpt={tiny_model_file}", f"input={pairs}", "backend=onnx", "quantize=none", "trainer.devices=2", f"output={tmp_path / 'two.csv'}"], tmp_path)
    assert two.returncode == 0, two.stderr[-2000:]
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "out.csv").read_text()


def _planted_graph(names: list[str], out: Path) -> None:
    """A valid ONNX graph with the cached graph's inputs that gives every sentence the same embedding."""
    import torch

    class Constant(torch.nn.Module):
        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return torch.ones(inputs[0].shape[0], 32) + 0 * inputs[0][:, :1].float()

    example = tuple(torch.ones(2, 5, dtype=torch.long) for _ in names)
    torch.onnx.export(Constant(), example, str(out), input_names=names, output_names=["output"],
                      dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names}, opset_version=17, dynamo=False)


def entry_trusted(graph: Path) -> bool:
    return backends.entry_problem(graph, graph.name.split("-")[0]) is None


@pytest.mark.parametrize("damage", ["planted", "truncated", "empty", "garbage", "digest removed"])
def test_a_cache_entry_that_fails_its_digest_is_rebuilt(damage: str, tiny_model_file: Path, cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch_scores = sts.load(tiny_model_file, precision="fp32").score(S1, S2, clip=False)
    first = sts.load(tiny_model_file, backend="onnx", quantize="none")
    (graph,) = cache.glob("*.onnx")
    content = graph.read_bytes()
    if damage == "planted":
        _planted_graph(first.scorer.encode.names, graph)
    elif damage == "digest removed":
        graph.with_name(graph.name + ".sha256").unlink()
    else:
        graph.write_bytes({"truncated": content[: len(content) // 2], "empty": b"", "garbage": b"\x00garbage" * 100}[damage])
    with caplog.at_level("WARNING", logger="sts.core.backends"):
        again = sts.load(tiny_model_file, backend="onnx", quantize="none")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "cached graph not trusted" in said[0] and "rebuilding it" in said[0], said
    np.testing.assert_allclose(again.score(S1, S2, clip=False), torch_scores, atol=1e-5)
    assert entry_trusted(graph)


def test_a_truncated_openvino_ir_is_rebuilt(tiny_model_file: Path, cache: Path) -> None:
    torch_scores = sts.load(tiny_model_file, precision="fp32").score(S1, S2, clip=False)
    sts.load(tiny_model_file, backend="openvino", quantize="static")
    (weights,) = cache.glob("*.bin")
    weights.write_bytes(weights.read_bytes()[:100])
    scores = sts.load(tiny_model_file, backend="openvino", quantize="static").score(S1, S2, clip=False)
    assert np.abs(scores - torch_scores).max() < 0.05
    assert entry_trusted(weights.with_suffix(".xml"))


@pytest.mark.parametrize("mode", [0o770, 0o707], ids=["group", "others"])
def test_a_cache_folder_others_can_write_is_refused(mode: int, tiny_model_file: Path, cache: Path) -> None:
    cache.mkdir(parents=True)
    cache.chmod(mode)
    with pytest.raises(STSError, match=rf"^{cache}: the ONNX cache folder is writable by other users.*chmod go-w {cache}, or set STS_CACHE"):
        sts.load(tiny_model_file, backend="onnx")
    assert not list(cache.iterdir())


def test_a_cache_folder_of_another_user_is_refused(tiny_model_file: Path, cache: Path) -> None:
    import os

    if os.getuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    cache.mkdir(parents=True, mode=0o700)
    os.chown(cache, 65534, 65534)
    with pytest.raises(STSError, match=rf"^{cache}: the ONNX cache folder is owned by another user"):
        sts.load(tiny_model_file, backend="onnx")


def test_the_cache_is_created_private(tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("STS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    old = os.umask(0o002)  # a umask that would make new folders group-writable
    try:
        sts.load(tiny_model_file, backend="onnx", quantize="none")
    finally:
        os.umask(old)
    for folder in (tmp_path / "home" / ".cache" / "sts", tmp_path / "home" / ".cache" / "sts" / "onnx"):
        assert folder.stat().st_mode & 0o777 == 0o700
