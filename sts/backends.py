"""backend=onnx | openvino: the network pass of scoring as an exported ONNX graph, run by ONNX
Runtime (int8-quantized) or by OpenVINO (bf16 or fp32, its fused graph).

Only `PairModule.encode` (padded token ids -> pooled embeddings or logits) moves; tokenising,
length sorting, embedding each distinct sentence once, the cosine or the head stay the torch code
every other path runs, so a backend changes the arithmetic and nothing else. Quantization:
- `dynamic` (default): int8 weights per output channel, activations quantized per batch at run
  time; no calibration data needed;
- `static`: activations quantized with ranges calibrated on training sentences (percentile
  99.99 of 512 STS-B train sentences, or the file `calibration`), attention products left in fp32;
- `none`: the fp32 graph.
OpenVINO runs the fp32 graph (`quantize=none`, its default) at the scoring precision: bf16 where
the hardware has it natively (`precision=auto`, sts.precision), else fp32; OpenVINO cannot run
ONNX Runtime's int8 operators (QLinearMatMul) and runs its dynamic ones slower than fp32.
What each costs in STS-B Spearman and gains in speed is measured by experiments/bench_throughput.py
(README "Performance"): int8 costs more than 0.1 STS-B Spearman, so it is opt-in; OpenVINO in bf16
costs nothing measurable and is the fastest on AMX CPUs, but it is an extra dependency and exports
the graph on a model's first use, so `torch` stays the default.

The quantized graph is cached under $STS_CACHE (default ~/.cache/sts), keyed by the weights and
settings, so a server's workers and repeated predict runs build it once.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sts.errors import STSError
from sts.models import PairModule
from sts.models.cross_encoder import CrossEncoder

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZATIONS = ("dynamic", "static", "none")
# quantize=null means the backend's own default
DEFAULT_QUANTIZE = {"onnx": "dynamic", "openvino": "none"}
CALIBRATION_SENTENCES = 512


class _Graph(torch.nn.Module):
    """module.encode with positional inputs, for the ONNX exporter."""

    def __init__(self, module: PairModule, names: list[str]) -> None:
        super().__init__()
        self.module, self.names = module, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module.encode(dict(zip(self.names, inputs)))


def cache_dir() -> Path:
    return Path(os.environ.get("STS_CACHE", "~/.cache/sts")).expanduser() / "onnx"


def default_calibration() -> list[str]:
    """512 distinct STS-B train sentences (fixed sample): what the bundled data offers every model."""
    from sts.data.readers import read_pairs
    from sts.resources import resource

    train = read_pairs(resource("stsb/sts-train.csv"), "stsb", [0, 5])
    sentences = list(dict.fromkeys([*train.sentence1, *train.sentence2]))
    pick = np.random.default_rng(0).choice(len(sentences), CALIBRATION_SENTENCES, replace=False)
    return [sentences[i] for i in sorted(pick)]


def read_calibration(path: str | None) -> list[str] | None:
    """Calibration sentences from a text file (one per line); None: the default sample."""
    if path is None:
        return None
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise STSError(f"calibration={path}: cannot read it as UTF-8 text ({getattr(e, 'strerror', None) or e})") from None
    sentences = [line for line in lines if line]
    if len(sentences) < 8:
        raise STSError(f"calibration={path}: {len(sentences)} non-empty lines; static quantization needs at least 8 sentences (one per line)")
    return sentences


class GraphEncoder:
    """Callable features -> tensor, standing in for `module.encode` (pass it as `encode=`): the
    module exported once to ONNX (cached), run by a runtime a subclass opens."""

    def __init__(self, module: PairModule, quantize: str, calibration: Sequence[str] | None = None) -> None:
        if quantize not in QUANTIZATIONS:
            raise STSError(f"quantize={quantize!r}: choose one of {QUANTIZATIONS}")
        self.module, self.quantize = module.eval(), quantize
        self.pair = isinstance(module, CrossEncoder)
        example = module.inputs.texts(["A man is playing a guitar.", "A cat."], ["A cat.", "Someone plays music."] if self.pair else None)
        self.names = ["input_ids", "attention_mask", *(["token_type_ids"] if "token_type_ids" in example else [])]
        self.calibration = list(calibration) if calibration is not None else None

    def __call__(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(self.run({name: features[name].cpu().numpy() for name in self.names}))

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    # --- building the graph -----------------------------------------------------------------
    def _key(self, runtime: str) -> str:
        digest = hashlib.sha256()
        for name, tensor in self.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        settings = [type(self.module).__name__, getattr(self.module, "pooling", ""), self.quantize, runtime, torch.__version__, *(self.calibration or ["<default>"])]
        digest.update("\x00".join(map(str, settings)).encode())
        return digest.hexdigest()[:32]

    def _cached_graph(self, runtime: str) -> Path:
        folder = cache_dir()
        path = folder / f"{self._key(runtime)}-{self.quantize}.onnx"
        if path.is_file():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                built = self._build(Path(tmp))
                os.replace(built, path)  # whole or not at all: another worker may be building it too
        except OSError as e:
            raise STSError(f"{folder}: cannot write the ONNX cache there ({e.strerror or e}); set STS_CACHE=<a writable folder>") from None
        return path

    def _features(self, texts: Sequence[str], pad_to: int | None = None) -> dict[str, torch.Tensor]:
        second = list(texts[1:]) + list(texts[:1]) if self.pair else None
        enc = self.module.tokenizer(list(texts), second, truncation=True, max_length=pad_to or self.module.max_length,
                                    padding="max_length" if pad_to else True, return_tensors="pt")
        return {name: enc[name] for name in self.names}

    def _build(self, tmp: Path) -> Path:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime.quantization advises on the root logger at every call
        try:
            return self._export_and_quantize(tmp)
        finally:
            root.setLevel(level)

    def _export_and_quantize(self, tmp: Path) -> Path:
        fp32 = tmp / "fp32.onnx"
        example = self._features(["A man is playing a guitar.", "A cat.", "Two dogs run on the grass."])
        axes = {name: {0: "batch", 1: "tokens"} for name in self.names} | {"output": {0: "batch"}}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Graph(self.module, self.names), tuple(example[n] for n in self.names), str(fp32), input_names=self.names,
                              output_names=["output"], dynamic_axes=axes, opset_version=17, dynamo=False)
        if self.quantize == "none":
            return fp32
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = tmp / "int8.onnx"
        if self.quantize == "dynamic":
            quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
            return out
        self._quantize_static(fp32, out)
        return out

    def _quantize_static(self, fp32: Path, out: Path) -> None:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

        graph = onnx.load(str(fp32)).graph
        weights = {i.name for i in graph.initializer}
        made_by = {o: n for n in graph.node for o in n.output}

        def is_weight(name: str) -> bool:
            node = made_by.get(name)
            return name in weights or (node is not None and node.op_type in ("Transpose", "Identity", "Cast") and all(is_weight(i) for i in node.input))

        # products of two activations (attention scores and their mix of values): int8 there costs the most
        attention = [n.name for n in graph.node if n.op_type == "MatMul" and not any(is_weight(i) for i in n.input)]
        sentences = self.calibration or default_calibration()
        batches = [self._features(sentences[i : i + 32], pad_to=64) for i in range(0, len(sentences), 32)]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{k: v.numpy() for k, v in b.items()} for b in batches])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.batches, None)

        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its histogram settings
            quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_exclude=attention, calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": 99.99})


class OnnxEncoder(GraphEncoder):
    """backend=onnx: ONNX Runtime on the CPU, int8 unless quantize=none."""

    def __init__(self, module: PairModule, quantize: str = "dynamic", calibration: Sequence[str] | None = None) -> None:
        super().__init__(module, quantize, calibration)
        try:
            import onnxruntime as ort
        except ImportError:
            raise STSError("backend=onnx needs the onnx extra: pip install 'sts[onnx]' (onnx, onnxscript, onnxruntime)") from None
        path = self._cached_graph(f"onnxruntime {ort.__version__}")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]


class OpenVinoEncoder(GraphEncoder):
    """backend=openvino: the fp32 graph compiled by OpenVINO for the CPU at `precision` (bf16 |
    fp32, already resolved), one stream on torch's thread count."""

    def __init__(self, module: PairModule, precision: str, quantize: str = "none") -> None:
        if quantize != "none":
            raise STSError(f"backend=openvino quantize={quantize}: OpenVINO runs the fp32 graph (quantize=none) in bf16 or fp32 (precision=); int8 is backend=onnx")
        super().__init__(module, quantize)
        try:
            import openvino as ov
        except ImportError:
            raise STSError("backend=openvino needs the openvino extra: pip install 'sts[onnx,openvino]' (the graph is exported with onnx)") from None
        path = self._cached_graph(f"openvino {ov.__version__}")
        settings = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        self.compiled = ov.Core().compile_model(str(path), "CPU", settings)
        self.output = self.compiled.output(0)

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.compiled(inputs)[self.output])
