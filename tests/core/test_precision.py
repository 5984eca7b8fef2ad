"""precision=auto: bf16 exactly where the hardware multiplies bf16 natively, said once."""
from pathlib import Path

import numpy as np
import pytest
import torch

from sts.io import checkpoint

from sts.core import precision
from sts.errors import STSError
from sts.core.scorer import Scorer


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "_announced", set())


def fake_cpu(monkeypatch: pytest.MonkeyPatch, flags: list[str], tiles: bool) -> None:
    monkeypatch.setattr(precision, "cpu", lambda: {"model": "test", "flags": flags, "amx": "amx_bf16" in flags})
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: tiles, raising=False)


@pytest.mark.parametrize(
    ("flags", "tiles", "chosen"),
    [
        (["amx_bf16", "amx_int8", "avx512_bf16"], True, "bf16"),
        (["avx512_bf16", "avx512f"], False, "fp32"),  # bf16 instructions without AMX: slower than fp32
        (["amx_bf16"], False, "fp32"),  # flag seen but torch cannot use the tiles (e.g. the OS denies them)
        ([], False, "fp32"),
    ],
)
def test_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch, fresh: None, caplog: pytest.LogCaptureFixture, flags: list[str], tiles: bool, chosen: str) -> None:
    fake_cpu(monkeypatch, flags, tiles)
    with caplog.at_level("INFO", logger="sts.core.precision"):
        assert precision.resolve("auto", "cpu") == chosen
        assert precision.resolve("auto", "cpu") == chosen
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"precision=auto chose {chosen}: ")  # once per process


def test_explicit_precisions_are_kept_and_silent(monkeypatch: pytest.MonkeyPatch, fresh: None, caplog: pytest.LogCaptureFixture) -> None:
    fake_cpu(monkeypatch, ["amx_bf16"], True)
    with caplog.at_level("INFO", logger="sts.core.precision"):
        assert precision.resolve("fp32", "cpu") == "fp32" and precision.resolve("bf16", "cpu") == "bf16"
    assert caplog.records == []
    with pytest.raises(STSError, match="precision='fp16'"):
        precision.resolve("fp16", "cpu")


def test_scorer_runs_what_auto_chose(monkeypatch: pytest.MonkeyPatch, fresh: None, tiny_model_file: Path) -> None:
    s1, s2 = ["a man eats", "dogs run"], ["food is eaten", "cats sleep"]
    module = checkpoint.load(tiny_model_file)
    fake_cpu(monkeypatch, [], False)
    plain = Scorer(module, precision="auto")
    assert plain.precision == "fp32"
    np.testing.assert_array_equal(plain(s1, s2), Scorer(module, precision="fp32")(s1, s2))
    fake_cpu(monkeypatch, ["amx_bf16"], True)
    fast = Scorer(module, precision="auto")
    assert fast.precision == "bf16"
    np.testing.assert_array_equal(fast(s1, s2), Scorer(module, precision="bf16")(s1, s2))


@pytest.mark.parametrize(("flags", "tiles", "chosen"), [(["amx_bf16", "amx_int8"], True, "bf16-mixed"), (["avx512_bf16", "avx512f"], False, "32-true")])
def test_default_trainer_trains_in_bf16_exactly_on_native_hardware(monkeypatch: pytest.MonkeyPatch, fresh: None, flags: list[str], tiles: bool, chosen: str) -> None:
    from omegaconf import OmegaConf

    from conftest import compose_train

    fake_cpu(monkeypatch, flags, tiles)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose_train([])
    assert OmegaConf.to_container(cfg.trainer, resolve=True)["precision"] == chosen
    assert compose_train(["trainer.precision=32-true"]).trainer.precision == "32-true"  # an explicit choice wins


@pytest.mark.parametrize(
    ("flags", "tiles", "extras", "precision_", "device", "chosen"),
    [
        (["amx_bf16", "amx_int8", "avx512_bf16"], True, "onnx openvino", "auto", "cpu", ("torch", None)),  # bf16 in torch
        (["avx512_bf16", "avx512_vnni", "avx512f"], False, "onnx openvino", "auto", "cpu", ("openvino", "static")),  # AVX-512 with VNNI, no AMX
        (["avx_vnni", "avx2"], False, "onnx openvino", "auto", "cpu", ("openvino", "static")),  # AVX2 with VNNI
        (["avx2"], False, "onnx openvino", "auto", "cpu", ("onnx", "dynamic")),  # AVX2 only: ONNX Runtime's int8
        (["avx512f", "avx2"], False, "onnx", "auto", "cpu", ("onnx", "dynamic")),  # AVX-512 without VNNI, the onnx extra alone
        (["avx2"], False, "openvino", "auto", "cpu", ("openvino", "none")),  # no onnx extra: OpenVINO's fp32 graph
        (["avx2"], False, "", "auto", "cpu", ("torch", None)),  # neither extra is installed
        (["avx512_vnni"], False, "onnx openvino", "fp32", "cpu", ("torch", None)),  # an explicit precision keeps torch
        (["avx512_vnni"], False, "onnx openvino", "auto", "cuda", ("torch", None)),
    ],
)
def test_backend_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch, fresh: None, caplog: pytest.LogCaptureFixture, flags: list[str], tiles: bool,
                                           extras: str, precision_: str, device: str, chosen: tuple) -> None:
    monkeypatch.delenv("STS_BACKEND")
    fake_cpu(monkeypatch, flags, tiles)
    monkeypatch.setattr(precision, "int8_runtime", lambda: "openvino" in extras.split())
    monkeypatch.setattr(precision, "onnx_runtime", lambda: "onnx" in extras.split())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level("INFO", logger="sts.core.precision"):
        assert precision.choose_backend(precision_, device) == chosen
        assert precision.choose_backend(precision_, device) == chosen
    said = [r.getMessage() for r in caplog.records]
    if precision_ == "auto" and device == "cpu" and "amx_bf16" not in flags:
        assert len(said) == 1 and said[0].startswith(f"backend=auto chose {chosen[0]} ")  # once per process
        assert ("pip install 'sts[onnx,openvino]'" in said[0]) == (not extras)
        assert ("s8 7-bit weights" in said[0]) == (chosen == ("onnx", "dynamic"))  # a bi-encoder's format on such a CPU
    else:
        assert said == []
    monkeypatch.setenv("STS_BACKEND", "onnx")  # a deployment's fixed choice wins
    assert precision.choose_backend(precision_, device) == ("onnx", None)


@pytest.mark.parametrize(("flags", "bi", "cross"), [(["avx512_vnni"], "s8", "s8"), (["amx_int8"], "s8", "s8"), (["avx2"], "s8 7-bit", "u8"), (["avx512f"], "s8 7-bit", "u8")])
def test_onnx_int8_weights_follow_the_cpu(monkeypatch: pytest.MonkeyPatch, flags: list[str], bi: str, cross: str) -> None:
    fake_cpu(monkeypatch, flags, False)
    assert (precision.onnx_int8_weights(cross_encoder=False), precision.onnx_int8_weights(cross_encoder=True)) == (bi, cross)


@pytest.mark.parametrize(("flags", "bi"), [(["avx512_vnni", "avx512f"], ("openvino", "static")), (["avx2"], ("onnx", "dynamic"))])
def test_backend_auto_keeps_cross_encoders_in_fp32_without_bf16(monkeypatch: pytest.MonkeyPatch, fresh: None, flags: list[str], bi: tuple) -> None:
    monkeypatch.delenv("STS_BACKEND")
    fake_cpu(monkeypatch, flags, False)
    monkeypatch.setattr(precision, "int8_runtime", lambda: True)
    monkeypatch.setattr(precision, "onnx_runtime", lambda: True)
    assert precision.choose_backend("auto", "cpu", cross_encoder=False) == bi
    assert precision.choose_backend("auto", "cpu", cross_encoder=True) == ("openvino", "none")
