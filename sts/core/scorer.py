"""Scoring raw sentence pairs (and embedding sentences) with a model: precision, device, backend,
progress. The one path from texts to scores: the API, every command, the server, training's
multi-process predict and the benchmarks all call it."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sts.core.calibration import MISSING
from sts.core.backends import DEFAULT_QUANTIZE, OnnxEncoder, OpenVinoEncoder, exported_graph, graph_backend
from sts.errors import STSError
from sts.core.inputs import PairInputs
from sts.core.model import Encode, PairModel
from sts.core.precision import BACKENDS, PRECISIONS, choose_backend, resolve
from sts.core.windows import LongInputs


class Scorer:
    """Callable (texts1, texts2) -> scores, in input order.

    precision: auto | fp32 | bf16 for the torch and openvino backends (sts.core.precision;
    `self.precision` is what runs: auto's choice, or what OpenVINO compiled). backend: auto |
    torch | onnx | openvino (sts.core.backends: ONNX Runtime with `quantize` dynamic | static | none,
    static calibrated on `calibration` sentences; OpenVINO with quantize none (the fp32 graph) or
    static (NNCF's int8 graph)). auto: sts.core.precision.choose_backend. quantize None: the backend's
    default (onnx dynamic, openvino none). A model loaded from an ONNX export runs its graph:
    auto is ONNX Runtime on it as exported (fp32), torch is refused (sts.core.backends.graph_backend).
    calibrated: scores are the model's probabilities of "similar" (`module.calibration`, fitted on
    dev) and `threshold` the decision threshold mapped through the same map, so labels are unchanged.
    long_inputs: texts longer than the model's max_length are truncated or read in windows
    (sts.core.windows); the windows are more token sequences of at most max_length for the same
    `encode`, so every backend runs them, and their pooling is torch code outside the graph.
    pad_to_multiple_of: every batch, of any backend, padded to a multiple of that many tokens
    (`padded`): the same scores from fewer input shapes.
    """

    def __init__(self, module: PairModel, batch_size: int = 64, precision: str = "auto", device: str = "cpu", backend: str = "auto",
                 quantize: str | None = None, calibration: Sequence[str] | None = None, calibrated: bool = False,
                 long_inputs: LongInputs | None = None, pad_to_multiple_of: int = 1) -> None:
        if calibrated and module.calibration is None:
            raise STSError(MISSING)
        if pad_to_multiple_of < 1:
            raise STSError(f"pad_to_multiple_of={pad_to_multiple_of}: must be at least 1")
        self.long = long_inputs or LongInputs()
        module.reading(self.long).check()
        self.calibration = module.calibration if calibrated else None
        backend, quantize, self.precision = plan(precision, device, backend, quantize, module.joined, exported_graph(module))
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.batch_size = batch_size
        self.backend = backend
        self.encode: Encode | None = None
        if backend == "torch" and self.precision == "bf16":
            _linear_weights_in_bf16(self.module)
        if backend == "openvino":
            self.encode = OpenVinoEncoder(self.module, resolve(precision, device), quantize, calibration)
            self.precision = self.encode.precision  # what OpenVINO compiled, read back
        elif backend == "onnx":
            self.encode = OnnxEncoder(self.module, quantize, calibration)
        self.pad_to_multiple_of = pad_to_multiple_of
        if pad_to_multiple_of > 1:
            self.encode = padded(self.encode or self.module.encode, pad_to_multiple_of, self.module.max_length, self.module.tokenizer.pad_token_id)

    @property
    def inputs(self) -> PairInputs:
        """How this scorer reads texts: the model's inputs with its long_inputs settings (what a
        server counts a request's tokens with)."""
        return self.module.reading(self.long)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the module runs in: bf16 autocast for torch, nothing for fp32 and the
        graph backends (they run their own precision)."""
        if self.backend == "torch" and self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def threshold(self) -> float:
        """The decision threshold on the scale of the scores this scorer returns."""
        raw = float(self.module.threshold)
        return raw if self.calibration is None else self.calibration.at(raw)

    def __call__(self, texts1: Sequence[str], texts2: Sequence[str], clip: bool = True) -> np.ndarray:
        """Scores in input order: the model's (a cosine below 0 clipped to 0 unless `clip` is
        false), or its calibrated probabilities (in 0-1, `clip` aside)."""
        with self.autocast():
            scores = self.module.score_texts(texts1, texts2, self.batch_size, clip=clip and self.calibration is None, encode=self.encode, long=self.long)
        return scores if self.calibration is None else self.calibration.apply(scores, self.module.threshold)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled embeddings (bi-encoders), float32, in input order, at this scorer's precision and backend."""
        with self.autocast():
            return self.module.embed_texts(texts, self.batch_size, encode=self.encode, long=self.long).float().cpu().numpy()


def padded(encode: Encode, multiple: int, max_length: int, pad_id: int) -> Encode:
    """`encode` over batches right-padded (pad_id, attention mask 0) to a multiple of `multiple`
    tokens, at most max_length: the padding changes no score, and a server meeting requests of
    every length then runs few distinct input shapes, for each of which oneDNN builds and keeps
    kernels (scoring.pad_to_multiple_of, docs/performance.md)."""
    import torch.nn.functional as F

    def run(features: dict[str, torch.Tensor]) -> torch.Tensor:
        width = features["input_ids"].shape[1]
        extra = min(-width % multiple, max(max_length - width, 0))
        if extra:
            features = {k: F.pad(t, (0, extra), value=pad_id if k == "input_ids" else 0) for k, t in features.items()}
        return encode(features)

    return run


def _linear_weights_in_bf16(module: torch.nn.Module) -> None:
    """Store the Linear layers' weights and biases in bf16, once: the numbers bf16 autocast would
    cast them to at every call (so scores are unchanged), a cast that for a short request cost as
    much CPU time as the matrix products themselves. The module is then for bf16 scoring; its
    other parameters (embeddings, layer norms) stay fp32."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.to(torch.bfloat16)


def plan(precision: str, device: str, backend: str, quantize: str | None, cross_encoder: bool, graph: Path | None = None) -> tuple[str, str | None, str]:
    """(backend, quantize, precision) a Scorer with these settings runs: the one rule, also behind
    `sts.api.Description.info`, which reports it without building the network. For OpenVINO the
    float precision is the one asked for; the Scorer reports what the compiled model reads back."""
    if backend not in BACKENDS:
        raise STSError(f"backend={backend!r}: choose one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise STSError(f"precision={precision!r}: choose one of {PRECISIONS}")
    if graph is not None:
        backend, quantize = graph_backend(backend, quantize, graph)
    if backend not in ("auto", "torch") and torch.device(device).type != "cpu":
        how = "an ONNX export runs only there" if graph is not None else f"device={device} scores with backend=torch"
        raise STSError(f"backend={backend} runs on the CPU; {how}")
    if backend == "auto":
        backend, chosen = choose_backend(precision, device, cross_encoder=cross_encoder)
        quantize = quantize or chosen
    if backend == "torch":
        return backend, quantize, resolve(precision, device)
    quantize = quantize or DEFAULT_QUANTIZE[backend]
    if backend == "openvino":
        return backend, quantize, "int8" if quantize == "static" else resolve(precision, device)
    return backend, quantize, "fp32" if quantize == "none" else "int8"


def progress(total: int | None, enabled: str | bool = "auto", unit: str = "pairs", desc: str | None = None) -> tqdm:
    """A bar with rate and ETA on a terminal; silent when stderr is not one (logs, pipes, CI)."""
    return tqdm(total=total, unit=unit, desc=desc, disable=not progress_shown(enabled), dynamic_ncols=True)


def progress_shown(enabled: str | bool = "auto") -> bool:
    """Whether progress is shown: `auto` on a terminal only."""
    return sys.stderr.isatty() if enabled == "auto" else bool(enabled)


def chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
