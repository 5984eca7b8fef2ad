"""backend=onnx | openvino: the network pass of scoring as an exported ONNX graph, run by ONNX
Runtime (int8-quantized) or by OpenVINO (bf16, fp32, or NNCF's int8 graph).

Only `PairModel.encode` (padded token ids -> pooled embeddings or logits) moves; tokenising,
length sorting, embedding each distinct sentence once, the cosine or the head stay the torch code
every other path runs, so a backend changes the arithmetic and nothing else. ONNX Runtime's
quantization:
- `dynamic` (its default): int8 weights per output channel, activations quantized per batch at
  run time; no calibration data needed;
- `static`: activations quantized with ranges calibrated on training sentences (percentile
  99.99 of 512 STS-B train sentences, or the file `calibration`), attention products left in fp32;
- `none`: the fp32 graph.
The weights' format follows the CPU (`GraphEncoder.weights`). With int8 dot products (VNNI, AMX)
they are signed 8-bit. Without them (AVX2, AVX-512 without VNNI) ONNX Runtime multiplies u8
activations by s8 weights with vpmaddubsw, whose 16-bit sums of two products saturate, and the
scores drift; there a bi-encoder's weights keep 7 bits (`reduce_range`, the saturation cannot
happen) and a cross-encoder's are unsigned 8-bit (ONNX Runtime's u8 x u8 kernel, which widens to
16 bits first: slower, and of the formats tried the one that kept a trained cross-encoder within
0.1 on dev). On an AVX2-only AMD EPYC, STS-B dev (experiments/bench/quant-sensitivity-*-avx2-dev.txt):
s8 cost the bundled MiniLM 0.11 Spearman and 7-bit nothing; cross_from_sick lost 0.21 with s8, 0.13
with 7-bit and 0.05 with u8 (0.10 on test, so backend=auto keeps cross-encoders in fp32 there).
OpenVINO compiles the fp32 graph (`quantize=none`, its default) at the scoring precision (bf16
where the hardware has it natively, else fp32), or with `quantize=static` NNCF's post-training
int8 graph: SmoothQuant moves the activation outliers of every matrix product's input (the
second FFN product's above all; experiments/quant_sensitivity.py measures each group) into its
weights, then per-channel int8 weights and calibrated int8 activations. The precision reported is
read back from the compiled model: OpenVINO runs f32 on CPUs without bf16 and is never claimed
to run what it does not.
What each costs in STS-B Spearman and gains in speed is measured by experiments/bench_throughput.py
(docs/performance.md); backend=auto (sts.core.precision.choose_backend) picks by the hardware.

The built graph is cached under $STS_CACHE (default ~/.cache/sts), keyed by the weights and
settings, so a server's workers and repeated predict runs build it once. Each entry has a sidecar
(`<entry>.sha256`: the key and each file's sha256) written after the files; an entry that fails
it (planted, truncated, half-written) is rebuilt, and a cache folder others can write is refused.

`export_graph` is the one ONNX exporter: the cache above and `export.py format=onnx` both write
`encode` with it, so an exported folder's model.onnx is the graph these backends run. A model
loaded from such a folder has a `GraphStandIn` for its encoder (no weights): its graph is run in
place (fp32) or quantized from that file into the cache, never re-exported, and torch cannot
run it (`graph_backend`).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import stat
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sts.data.tables import atomic_output
from sts.errors import STSError
from sts.core import PairModel
from sts.core.cross_encoder import CrossEncoder
from sts.core import precision as host

QUANTIZATIONS = ("dynamic", "static", "none")
# quantize=null means the backend's own default
DEFAULT_QUANTIZE = {"onnx": "dynamic", "openvino": "none"}
CALIBRATION_SENTENCES = 512
log = logging.getLogger(__name__)


OPSET = 17
OUTPUT = "output"
EXAMPLE = ["A man is playing a guitar.", "A cat.", "Two dogs run on the grass."]


class _Graph(torch.nn.Module):
    """module.encode with positional inputs, for the ONNX exporter."""

    def __init__(self, module: PairModel, names: list[str]) -> None:
        super().__init__()
        self.module, self.names = module, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module.encode(dict(zip(self.names, inputs)))


def graph_inputs(module: PairModel) -> list[str]:
    """The graph's input names, in order: the token ids and mask, and the token types where the
    tokenizer gives them to a cross-encoder's joined pairs."""
    pair = isinstance(module, CrossEncoder)
    example = module.inputs.texts(["A man is playing a guitar.", "A cat."], ["A cat.", "Someone plays music."] if pair else None)
    return ["input_ids", "attention_mask", *(["token_type_ids"] if "token_type_ids" in example else [])]


def features(module: PairModel, names: Sequence[str], texts: Sequence[str], pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """The graph's inputs for `texts` (a cross-encoder: each joined with its neighbour), padded to
    the longest or to `pad_to` tokens."""
    second = list(texts[1:]) + list(texts[:1]) if module.joined else None
    enc = module.tokenizer(list(texts), second, truncation=True, max_length=pad_to or module.max_length,
                           padding="max_length" if pad_to else True, return_tensors="pt")
    return {name: enc[name] for name in names}


def export_graph(module: PairModel, path: Path) -> list[str]:
    """Write `module.encode` (padded token ids -> pooled embeddings, or a cross-encoder's logits)
    as an fp32 ONNX graph at `path`, batch and token axes dynamic, opset OPSET; returns its input
    names. The one exporter: the backends' cache and export.py format=onnx both call it."""
    module = module.eval()
    names = graph_inputs(module)
    example = features(module, names, EXAMPLE)
    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {OUTPUT: {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Graph(module, names), tuple(example[n] for n in names), str(path), input_names=names,
                          output_names=[OUTPUT], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return names


class GraphStandIn(torch.nn.Module):
    """The encoder of a model whose network is an exported graph (an ONNX export folder): its
    transformers config, for what the model says about itself, and no weights. The graph at
    `graph` runs in its place (backend=onnx | openvino); it never runs itself."""

    def __init__(self, config: Any, graph: Path) -> None:
        super().__init__()
        self.config, self.graph = config, Path(graph)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise STSError(f"{self.graph}: an exported ONNX graph runs with backend=onnx or openvino, not in torch")


def exported_graph(module: PairModel) -> Path | None:
    """The ONNX graph `module` was loaded from (an export folder's model.onnx), or None."""
    encoder = getattr(module, "encoder", None)
    return encoder.graph if isinstance(encoder, GraphStandIn) else None


def graph_backend(backend: str, quantize: str | None, graph: Path) -> tuple[str, str | None]:
    """(backend, quantize) for a model loaded from an ONNX export: auto runs its graph as it was
    exported (ONNX Runtime, fp32, quantize none unless asked); torch cannot run it."""
    if backend == "torch":
        raise STSError(f"backend=torch: {graph.parent} is an ONNX export, whose network is only its graph ({graph.name}); "
                       "score it with backend=onnx or openvino, or load the model file it was exported from")
    if backend == "auto":
        return "onnx", quantize or "none"
    return backend, quantize


def cache_dir() -> Path:
    return Path(os.environ.get("STS_CACHE", "~/.cache/sts")).expanduser() / "onnx"


def private_cache_dir() -> Path:
    """`cache_dir()`, created private (0o700) where missing, and refused when someone else could
    write into it: whoever can plant a graph there decides every score. The default's parent
    (~/.cache/sts) is ours too and checked alike; a folder STS_CACHE names is the user's choice."""
    folder = cache_dir()
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise STSError(f"{folder}: cannot write the ONNX cache there ({e.strerror or e}); set STS_CACHE=<a writable folder>") from None
    for place in (folder,) if "STS_CACHE" in os.environ else (folder, folder.parent):
        info = place.stat()
        if info.st_uid != os.getuid():
            raise STSError(f"{place}: the ONNX cache folder is owned by another user (uid {info.st_uid}), who could plant graphs in it; set STS_CACHE=<a folder of your own>")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise STSError(f"{place}: the ONNX cache folder is writable by other users, who could plant graphs in it; run chmod go-w {place}, or set STS_CACHE=<a private folder>")
    return folder


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry_files(path: Path) -> list[Path]:
    """The files of a cache entry: the .onnx graph, or an OpenVINO IR's .bin weights and .xml graph
    (in the order they are moved in)."""
    return [path.with_suffix(".bin"), path] if path.suffix == ".xml" else [path]


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def entry_problem(path: Path, key: str) -> str | None:
    """Why the cache entry at `path` cannot be trusted (None: it can): its sidecar, written last,
    must name `key` and the sha256 of each of its files as they are now."""
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        files = record.get("files") if isinstance(record, dict) and record.get("key") == key else None
        if not isinstance(files, dict):
            return "its digest file names other weights"
        for file in _entry_files(path):
            if files.get(file.name) != _file_digest(file):
                return f"{file.name} differs from the digest written when it was built"
    except FileNotFoundError as e:
        return f"{Path(e.filename).name} is missing"
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return f"unreadable ({type(e).__name__})"
    return None


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
    module exported once to ONNX (cached), or the graph it was loaded from (`exported_graph`),
    run by a runtime a subclass opens."""

    runtime = ""  # onnxruntime | openvino: who runs (and, for int8, quantizes) the graph

    def __init__(self, module: PairModel, quantize: str, calibration: Sequence[str] | None = None) -> None:
        if quantize not in QUANTIZATIONS:
            raise STSError(f"quantize={quantize!r}: choose one of {QUANTIZATIONS}")
        self.module, self.quantize = module.eval(), quantize
        self.pair = isinstance(module, CrossEncoder)
        # ONNX Runtime's int8 weights: s8 | s8 7-bit | u8 (the module docstring says why)
        self.weights = host.onnx_int8_weights(self.pair) if self.runtime == "onnxruntime" and quantize != "none" else "s8"
        self.graph = exported_graph(module)
        self.names = graph_inputs(module)
        self.calibration = list(calibration) if calibration is not None else None

    def __call__(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(self.run({name: features[name].cpu().numpy() for name in self.names}))

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    @contextlib.contextmanager
    def _opening(self) -> Any:
        """Opening an exported graph (a user's file, not one built here): whatever the runtime
        raises for one it cannot read becomes one line naming it."""
        try:
            yield
        except Exception as e:
            if self.graph is None:
                raise
            raise STSError(f"{self.graph}: {self.runtime} cannot read the graph ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]})") from None

    # --- building the graph -----------------------------------------------------------------
    def _key(self, runtime: str) -> str:
        digest = hashlib.sha256()
        if self.graph is not None:  # an exported graph: its bytes are the weights
            digest.update(_file_digest(self.graph).encode())
        for name, tensor in self.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        settings = [type(self.module).__name__, getattr(self.module, "pooling", ""), self.quantize, self.weights, runtime, torch.__version__, *(self.calibration or ["<default>"])]
        digest.update("\x00".join(map(str, settings)).encode())
        return digest.hexdigest()[:32]

    def _cached_graph(self, version: str) -> Path:
        """The graph for these weights and settings: the cached entry when its digests check out,
        else (missing, half-written, truncated, planted) built afresh and put in place atomically.
        An exported graph run as it is (quantize=none) is read in place, not copied."""
        if self.graph is not None and self.quantize == "none":
            return self.graph
        folder = private_cache_dir()
        key = self._key(version)
        path = folder / f"{key}-{self.quantize}.onnx"
        if self.runtime == "openvino" and self.quantize != "none":
            path = path.with_suffix(".xml")  # an OpenVINO IR: the .xml graph and its .bin weights
        if any(p.exists() for p in [*_entry_files(path), _sidecar(path)]):
            problem = entry_problem(path, key)
            if problem is None:
                return path
            log.warning("%s: cached graph not trusted (%s); rebuilding it", path, problem)
        try:
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                built = self._build(Path(tmp))
                files = {target.name: _file_digest(source) for source, target in zip(_entry_files(built), _entry_files(path))}
                _sidecar(path).unlink(missing_ok=True)  # a reader in between sees an entry without digest: rebuilds, never trusts
                for source, target in zip(_entry_files(built), _entry_files(path)):
                    os.replace(source, target)  # whole or not at all: another worker may be building it too
                with atomic_output(_sidecar(path), overwrite=True) as sidecar:  # last: the entry is complete
                    json.dump({"key": key, "files": files}, sidecar)
        except OSError as e:
            raise STSError(f"{folder}: cannot write the ONNX cache there ({e.strerror or e}); set STS_CACHE=<a writable folder>") from None
        return path

    def _features(self, texts: Sequence[str], pad_to: int | None = None) -> dict[str, torch.Tensor]:
        return features(self.module, self.names, texts, pad_to)

    def _check_runs(self) -> None:
        """An exported graph (not built here) scores two sentences before it is trusted with a
        file: one line naming it when it cannot, or gives the wrong shape, NaN or infinity."""
        batch = self._features(EXAMPLE[:2])
        try:
            out = self.run({name: batch[name].numpy() for name in self.names})
        except Exception as e:  # whatever the runtime raises for a graph it cannot run
            raise STSError(f"{self.graph}: {self.runtime} cannot run the graph ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]})") from None
        width = getattr(self.module.encoder.config, "hidden_size", None)
        expected = (2,) if self.pair else (2, width)
        if tuple(np.shape(out)) != expected or not np.isfinite(out).all():
            raise STSError(f"{self.graph}: the graph gives {np.shape(out)} values{' (not all finite)' if np.shape(out) == expected else ''} "
                           f"for 2 inputs; a {type(self.module).__name__} needs {expected}")

    def _build(self, tmp: Path) -> Path:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime.quantization advises on the root logger at every call
        try:
            return self._export_and_quantize(tmp)
        finally:
            root.setLevel(level)

    def _export_and_quantize(self, tmp: Path) -> Path:
        fp32 = self.graph if self.graph is not None else tmp / "fp32.onnx"
        if self.graph is None:
            export_graph(self.module, fp32)
        if self.quantize == "none":
            return fp32
        if self.runtime == "openvino":
            return self._quantize_nncf(fp32, tmp)
        from onnxruntime.quantization import quantize_dynamic

        out = tmp / "int8.onnx"
        if self.quantize == "dynamic":
            quantize_dynamic(str(fp32), str(out), per_channel=True, op_types_to_quantize=["MatMul"], **self._weight_format())
            return out
        self._quantize_static(fp32, out)
        return out

    def calibration_batches(self) -> list[dict[str, np.ndarray]]:
        """The calibration sentences as padded batches of 32 (pairs of neighbours for a cross-encoder)."""
        sentences = self.calibration or default_calibration()
        return [{k: v.numpy() for k, v in self._features(sentences[i : i + 32]).items()} for i in range(0, len(sentences), 32)]

    def _quantize_nncf(self, fp32: Path, tmp: Path, ignored: Sequence[str] = (), smooth_quant: float | None = None, fast_bias_correction: bool = True) -> Path:
        """OpenVINO int8 by NNCF post-training quantization: per-channel symmetric int8 weights,
        asymmetric activations with ranges from the calibration sentences, SmoothQuant and fast
        bias correction (NNCF's transformer preset). Writes an OpenVINO IR (.xml + .bin)."""
        import nncf
        import openvino as ov

        model = ov.Core().read_model(str(fp32))
        batches = self.calibration_batches()
        advanced = nncf.AdvancedQuantizationParameters()
        if smooth_quant is not None:
            advanced.smooth_quant_alphas.matmul = smooth_quant
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars
            quantized = nncf.quantize(model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
                                      subset_size=len(batches), fast_bias_correction=fast_bias_correction, ignored_scope=nncf.IgnoredScope(names=list(ignored), validate=False),
                                      advanced_parameters=advanced)
        out = tmp / "int8.xml"
        ov.save_model(quantized, str(out), compress_to_fp16=False)
        return out

    def _weight_format(self) -> dict[str, Any]:
        """ONNX Runtime's quantizer arguments for `self.weights`."""
        from onnxruntime.quantization import QuantType

        return {"weight_type": QuantType.QUInt8 if self.weights == "u8" else QuantType.QInt8, "reduce_range": self.weights == "s8 7-bit"}

    def _quantize_static(self, fp32: Path, out: Path) -> None:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

        # products of two activations (attention scores and their mix of values): int8 there costs the most
        attention = matmuls(onnx.load(str(fp32)).graph)[1]
        sentences = self.calibration or default_calibration()
        batches = [self._features(sentences[i : i + 32], pad_to=64) for i in range(0, len(sentences), 32)]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{k: v.numpy() for k, v in b.items()} for b in batches])

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.batches, None)

        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its histogram settings
            quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8, **self._weight_format(),
                            per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_exclude=attention, calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": 99.99})


def matmuls(graph: Any) -> tuple[list[str], list[str]]:
    """The names of an ONNX graph's MatMul nodes: (products with a weight, products of two activations)."""
    weights = {i.name for i in graph.initializer}
    made_by = {o: n for n in graph.node for o in n.output}

    def is_weight(name: str) -> bool:
        node = made_by.get(name)
        return name in weights or (node is not None and node.op_type in ("Transpose", "Identity", "Cast") and all(is_weight(i) for i in node.input))

    nodes = [n for n in graph.node if n.op_type == "MatMul"]
    with_weight = [n.name for n in nodes if any(is_weight(i) for i in n.input)]
    return with_weight, [n.name for n in nodes if n.name not in with_weight]


class OnnxEncoder(GraphEncoder):
    """backend=onnx: ONNX Runtime on the CPU, int8 unless quantize=none."""

    runtime = "onnxruntime"

    def __init__(self, module: PairModel, quantize: str = "dynamic", calibration: Sequence[str] | None = None) -> None:
        super().__init__(module, quantize, calibration)
        try:
            import onnxruntime as ort
        except ImportError:
            raise STSError("backend=onnx needs the onnx extra: pip install 'sts[onnx]' (onnx, onnxscript, onnxruntime)") from None
        path = self._cached_graph(f"onnxruntime {ort.__version__}")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        with self._opening():
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        if self.graph is not None:
            self._check_runs()

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, inputs)[0]


class OpenVinoEncoder(GraphEncoder):
    """backend=openvino: the graph compiled by OpenVINO for the CPU, one stream on torch's thread
    count. quantize=none compiles the fp32 graph at `precision` (bf16 | fp32, already resolved);
    quantize=static runs NNCF's int8 graph, its other operations at `precision`. `self.precision`
    is what the compiled model reports, not what was asked: OpenVINO runs f32 where the CPU has no
    bf16, and says so here once."""

    runtime = "openvino"

    def __init__(self, module: PairModel, precision: str, quantize: str = "none", calibration: Sequence[str] | None = None) -> None:
        if quantize not in ("none", "static"):
            raise STSError(f"backend=openvino quantize={quantize}: OpenVINO runs the fp32 graph (quantize=none) or NNCF's int8 graph (quantize=static); "
                           "dynamic int8 is backend=onnx")
        super().__init__(module, quantize, calibration)
        try:
            import openvino as ov
        except ImportError:
            raise STSError("backend=openvino needs the openvino extra: pip install 'sts[onnx,openvino]' (the graph is exported with onnx)") from None
        version = f"openvino {ov.__version__}"
        if quantize == "static":
            try:
                import nncf
            except ImportError:
                raise STSError("backend=openvino quantize=static needs NNCF: pip install 'sts[onnx,openvino]'") from None
            version += f" nncf {nncf.__version__}"
        path = self._cached_graph(version)
        settings = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        with self._opening():
            self.compiled = ov.Core().compile_model(str(path), "CPU", settings)
        self.output = self.compiled.output(0)
        if self.graph is not None:
            self._check_runs()
        ran = compiled_precision(self.compiled)
        if ran != precision:
            from sts.core.provenance import hardware

            log.warning("backend=openvino precision=%s: OpenVINO compiled %s on this CPU (%s), so the scores are %s", precision, ran, hardware(), ran)
        self.precision = "int8" if quantize == "static" else ran

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.compiled(inputs)[self.output])


def compiled_precision(compiled: object) -> str:
    """fp32 | bf16 | fp16: the floating-point precision an OpenVINO compiled model runs, read back from it."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # type: ignore[attr-defined]
    return {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(hint, hint)
