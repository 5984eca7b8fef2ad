"""precision=auto: bf16 autocast where the hardware multiplies bf16 natively, fp32 elsewhere;
backend=auto: on a CPU without native bf16, an int8 graph (OpenVINO's with VNNI, ONNX Runtime's without)
when the extras are there.

On CPUs with AMX (Intel Xeon 4th generation and later) bf16 matrix products run several times
faster than fp32 and the scores move by about 1e-3 (STS-B Spearman within 0.01); on CPUs without
it bf16 is emulated and slower than fp32. So `auto` asks the hardware, never the CPU's name: the
kernel's AMX flags and torch's own check that the tiles can be used, or CUDA's bf16 support.
"""
from __future__ import annotations

import importlib.util
import logging
import os

import torch

from sts.errors import STSError
from sts.core.provenance import cpu

PRECISIONS = ("auto", "fp32", "bf16")
BACKENDS = ("auto", "torch", "onnx", "openvino")  # what runs the network pass (sts.core.backends)
_announced: set[tuple[str, str]] = set()
log = logging.getLogger(__name__)


def native_bf16(device: str) -> str | None:
    """Why `device` runs bf16 natively (a short reason), or None when it does not."""
    kind = torch.device(device).type
    if kind == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return f"{torch.cuda.get_device_name()} supports bf16"
        return None
    if kind != "cpu":
        return None
    flags = cpu()["flags"]
    tiles = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    if "amx_bf16" in flags and tiles:
        return "this CPU has AMX (amx_bf16)"
    return None


def _say_once(key: tuple[str, str], message: str) -> None:
    """Log a choice once per process: the entry points show it; a library caller reads Model.info."""
    if key not in _announced:
        _announced.add(key)
        log.info(message)


def resolve(precision: str, device: str) -> str:
    """fp32 | bf16 for `precision` on `device`; `auto` is decided here and logged once per process."""
    if precision not in PRECISIONS:
        raise STSError(f"precision={precision!r}: choose one of {PRECISIONS}")
    if precision != "auto":
        return precision
    reason = native_bf16(device)
    chosen = "bf16" if reason else "fp32"
    why = f"{reason}; precision=fp32 gives exact fp32 scores" if reason else f"no native bf16 on {device}"
    _say_once((device, chosen), f"precision=auto chose {chosen}: {why}")
    return chosen


def training_precision() -> str:
    """Lightning's precision for trainer=default: bf16-mixed where the device Lightning picks
    (a GPU if there is one, else the CPU) multiplies bf16 natively, 32-true elsewhere. Measured
    on an AMX CPU over 3 seeds of the default recipe before it became the default
    (docs/performance.md); logged once."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reason = native_bf16(device)
    chosen = "bf16-mixed" if reason else "32-true"
    _say_once(("train", chosen), f"trainer.precision chose {chosen}: {reason or f'no native bf16 on {device}'}; set trainer.precision=32-true or bf16-mixed to choose")
    return chosen


def int8_runtime() -> bool:
    """Whether OpenVINO, NNCF and the ONNX exporter are installed (the openvino extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf", "onnx"))


def onnx_runtime() -> bool:
    """Whether ONNX Runtime and the ONNX exporter are installed (the onnx extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))


def int8_dot_products() -> str | None:
    """Which int8 dot-product instructions the CPU has (VNNI or AMX int8), or None: without them
    an int8 matrix product is emulated with 16-bit steps and is not faster than fp32."""
    found = [f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if f in cpu()["flags"]]
    return found[0] if found else None


def onnx_int8_weights(cross_encoder: bool) -> str:
    """ONNX Runtime's int8 weight format on this CPU: s8 with int8 dot products; without them s8 in
    7 bits for a bi-encoder and u8 for a cross-encoder (sts.core.backends says why)."""
    if int8_dot_products():
        return "s8"
    return "u8" if cross_encoder else "s8 7-bit"


def choose_backend(precision: str, device: str, cross_encoder: bool = False) -> tuple[str, str | None]:
    """backend=auto -> (backend, quantize), by the hardware (docs/performance.md has the figures):
    - $STS_BACKEND when set (a deployment's, or the test suite's, fixed choice);
    - native bf16 (AMX, a bf16 GPU), any GPU, or an explicit precision: torch;
    - a CPU with int8 dot products (VNNI) but no AMX: OpenVINO's int8 graph for a bi-encoder (NNCF
      with SmoothQuant, built once per model and cached: STS-B Spearman within 0.1 of fp32);
      a cross-encoder stays in fp32 there (int8 cost a trained one 0.24 on STS-B test);
    - a CPU with neither (AVX2, AVX-512 without VNNI): for a bi-encoder ONNX Runtime's dynamic int8
      graph, its weights in the format that does not saturate there (`onnx_int8_weights`), built
      once per model and cached: on an AVX2-only AMD EPYC the fastest scorer within 0.1 STS-B
      Spearman of fp32 (OpenVINO's int8 graph ran slower than its fp32 one there); a cross-encoder
      stays in fp32 there too (its best int8, u8 weights, cost a trained one 0.104 on STS-B test, more
      than a default may, for 13-30% over OpenVINO's fp32 graph: experiments/bench/*-avx2-314c3c5.txt);
      OpenVINO's fp32 graph without the onnx extra;
    - torch fp32 when neither extra is installed.
    Said once per process."""
    fixed = os.environ.get("STS_BACKEND")
    if fixed:
        if fixed not in BACKENDS[1:]:
            raise STSError(f"STS_BACKEND={fixed!r}: choose one of {', '.join(BACKENDS[1:])} (or unset it for backend=auto)")
        return fixed, None
    if precision != "auto" or torch.device(device).type != "cpu" or native_bf16(device):
        return "torch", None
    vnni = int8_dot_products()
    if not vnni and not cross_encoder and onnx_runtime():
        weights = onnx_int8_weights(cross_encoder)
        _say_once(("backend", f"onnx int8 {weights}"), f"backend=auto chose onnx int8 (ONNX Runtime, dynamic, {weights} weights, built once per model): no native "
                  "bf16 or int8 dot products on this CPU; backend=torch precision=fp32 gives exact fp32 scores")
        return "onnx", "dynamic"
    if not int8_runtime():
        _say_once(("backend", "torch"), "backend=auto chose torch fp32: no native bf16 on this CPU; pip install 'sts[onnx,openvino]' for "
                  "OpenVINO or ONNX Runtime, faster on such CPUs (docs/performance.md)")
        return "torch", None
    if vnni and not cross_encoder:
        _say_once(("backend", "openvino int8"), f"backend=auto chose openvino int8 (NNCF, built once per model): this CPU has int8 dot products ({vnni}) "
                  "but no native bf16; backend=torch precision=fp32 gives exact fp32 scores")
        return "openvino", "static"
    if cross_encoder:
        why = "int8 is for bi-encoders (it cost a trained cross-encoder 0.10 to 0.24 STS-B Spearman on these CPUs)"
    else:
        why = "no native bf16 or int8 dot products on this CPU; pip install 'sts[onnx]' for ONNX Runtime's int8 graph, faster here"
    _say_once(("backend", "openvino fp32"), f"backend=auto chose openvino fp32 (the graph exported once per model): {why}")
    return "openvino", "none"
