"""The Python API: `sts.load(...)` gives a `Model` that scores, labels, embeds and mines.

    import sts
    model = sts.load()                      # bundled all-MiniLM-L6-v2, zero-shot, calibrated threshold
    model.label(["the cat ate the mouse"], ["the mouse was eaten by the cat"])   # array([1])

predict.py, evaluate.py, embed.py, mine.py and augment.py are built on this object, so a score
is the same number whichever way it is asked for.
"""
from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sts.errors import STSError
from sts.core.ann import ANN, choose, faiss_module
from sts.core.mining import MAX_PAIRS, MinedPair, similar_pairs
from sts.core import BiEncoder, CrossEncoder, PairModel
from sts.core import hparams as hparams_rules
from sts.core.calibration import MISSING, Calibration
from sts.core.cross_encoder import set_both_orders
from sts.core.inputs import PairInputs
from sts.core.scorer import Scorer
from sts.core.scorer import progress as progress_bar
from sts.core.windows import LongInputs
from sts.data.embeddings import Embeddings, EmbeddingsFile, InMemory, Selected, write_npy
from sts.io.model_card import file_origin, model_info

CHECKPOINT_SUFFIXES = (".pt", ".ckpt", ".pth")
OUTPUT_COLUMNS = ("score", "lbl")
CHUNK = 4096  # pairs scored or sentences embedded per progress-bar step


def _is_frame(value: Any) -> bool:
    """A pandas DataFrame, recognised without importing pandas (an optional dependency)."""
    return type(value).__name__ == "DataFrame" and type(value).__module__.split(".")[0] == "pandas"


def _texts(name: str, values: Any, start: int = 0) -> list[str]:
    """A list of non-empty strings from a str, list, tuple, numpy array or pandas Series (`start`:
    the first one's position in the whole input, for messages)."""
    if isinstance(values, str):
        values = [values]
    elif isinstance(values, np.ndarray):
        values = values.tolist()
    elif hasattr(values, "tolist") and type(values).__module__.split(".")[0] == "pandas":
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise STSError(f"{name}: expected a list of sentences (list, tuple, numpy array or pandas Series), got {type(values).__name__}")
    for k, value in enumerate(values, start):
        if not isinstance(value, str):
            raise STSError(f"{name}[{k}]: is not text: {value!r:.60}")
        if not value.strip():
            raise STSError(f"{name}[{k}]: is empty")
    return list(values)


class Model:
    """A loaded similarity model. Scores are 0-1 in input order; `lbl` is score >= threshold.

    Args:
        module: the bi- or cross-encoder.
        info: where it came from and what it measured (see `info`).
        batch_size: sentences per forward pass (sorted by length, padded per batch).
        precision: auto | fp32 | bf16 autocast; auto = bf16 where the hardware has it natively
            (sts.core.precision). In bf16 with the torch backend, `module`'s Linear weights are
            kept in bf16 (cast once, not per call).
        device: cpu | cuda | cuda:N | mps.
        backend: auto (sts.core.precision.choose_backend: torch on bf16 hardware, OpenVINO int8
            on other CPUs), torch, onnx (ONNX Runtime) or openvino (see sts.core.backends).
        quantize: onnx: int8 dynamic | static | none; openvino: none (the fp32 graph at
            `precision`) or static (NNCF's int8 graph); None is the backend's default.
        calibration: the sentences quantize=static calibrates on (None: 512 STS-B train sentences).
        calibrated: scores are probabilities of "similar" (the model's calibration, fitted on
            dev) and `threshold` is mapped through the same monotone map, so labels are unchanged.
        long_inputs: "truncate" (a text's first max_length tokens), "chunk" (every token, in
            overlapping windows whose embeddings are averaged, or whose pairs' scores are reduced),
            or `LongInputs` with the window settings (sts.core.windows).
        pad_to_multiple_of: batches padded to a multiple of this many tokens (at most max_length):
            the same scores from fewer distinct input shapes (a server's kernels and memory).
    """

    def __init__(self, module: PairModel, info: dict[str, Any], batch_size: int = 64, precision: str = "auto", device: str = "cpu",
                 backend: str = "auto", quantize: str | None = None, calibration: Sequence[str] | None = None, calibrated: bool = False,
                 long_inputs: str | LongInputs | None = None, pad_to_multiple_of: int = 1) -> None:
        self.module = module
        self.scorer = Scorer(module, batch_size, precision, device, backend, quantize, calibration, calibrated, LongInputs.of(long_inputs), pad_to_multiple_of)
        self._info = info

    @property
    def architecture(self) -> str:
        return type(self.module).__name__

    @property
    def threshold(self) -> float:
        """The decision threshold: chosen on dev at training (or shipped for the bundled model), on
        the scale of `score` (a probability when calibrated)."""
        return self.scorer.threshold

    @property
    def info(self) -> dict[str, Any]:
        """Architecture, encoder, threshold and its origin, recorded metrics, how it was made."""
        module = self.module
        return model_info(self.architecture, module.encoder.config, module.max_length, getattr(module, "pooling", None),
                          getattr(module, "both_orders", None), self.threshold, self.scorer.precision, self.scorer.backend, self._info,
                          module.calibration, self.scorer.calibration is not None, self.scorer.long.mode, self.scorer.pad_to_multiple_of)

    def __repr__(self) -> str:
        return f"Model({self.architecture}, source={self._info.get('source')!r}, threshold={self.threshold:.3f})"

    # --- pairs ------------------------------------------------------------------------------
    def _pairs(self, sentences1: Any, sentences2: Any, columns: Sequence[str]) -> tuple[list[str], list[str]]:
        if _is_frame(sentences1):
            if sentences2 is not None:
                raise STSError("a DataFrame carries both sentences; give columns=(first, second), not a second argument")
            if len(columns) != 2:
                raise STSError(f"columns={tuple(columns)}: name exactly two columns")
            missing = [c for c in columns if c not in sentences1.columns]
            if missing:
                raise STSError(f"DataFrame: no column(s) {missing} (columns: {list(sentences1.columns)[:20]}); set columns=(first, second)")
            return _texts(columns[0], sentences1[columns[0]]), _texts(columns[1], sentences1[columns[1]])
        if sentences2 is None:
            raise STSError("score/label take two lists of sentences (or one DataFrame)")
        first, second = _texts("sentences1", sentences1), _texts("sentences2", sentences2)
        if len(first) != len(second):
            raise STSError(f"sentences1 has {len(first)} sentences but sentences2 {len(second)}; pairs need one of each")
        return first, second

    def _labelled(self, frame: Any, scores: np.ndarray, threshold: float) -> Any:
        clash = [c for c in OUTPUT_COLUMNS if c in frame.columns]
        if clash:
            raise STSError(f"DataFrame: already has column(s) {clash}, which the result adds")
        out = frame.copy()
        out["score"] = scores
        out["lbl"] = (scores >= threshold).astype(np.int64)
        return out

    def _threshold(self, threshold: float | None) -> float:
        value = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= value <= 1.0:
            raise STSError(f"threshold={threshold}: must be between 0 and 1")
        return value

    def score(self, sentences1: Any, sentences2: Any = None, *, columns: Sequence[str] = ("line1", "line2"), clip: bool = True,
              progress: str | bool = False, chunk_size: int = CHUNK) -> Any:
        """Similarity in 0-1 per pair (`clip=False`: a bi-encoder's raw cosine, as metrics use it).
        A DataFrame in gives a copy with `score` and `lbl` columns, index and rows unchanged.
        `progress`: a bar stepping every `chunk_size` pairs (True, or "auto": on a terminal only)."""
        first, second = self._pairs(sentences1, sentences2, columns)
        scores = self._in_chunks(lambda a, b: self.scorer(first[a:b], second[a:b], clip=clip), len(first), progress, chunk_size, "pairs", "scoring")
        return self._labelled(sentences1, scores, self.threshold) if _is_frame(sentences1) else scores

    def label(self, sentences1: Any, sentences2: Any = None, *, threshold: float | None = None, columns: Sequence[str] = ("line1", "line2")) -> Any:
        """1 (similar) or 0 per pair: score >= `threshold` (default: the model's own)."""
        cut = self._threshold(threshold)
        first, second = self._pairs(sentences1, sentences2, columns)
        scores = self._in_chunks(lambda a, b: self.scorer(first[a:b], second[a:b]), len(first))
        return self._labelled(sentences1, scores, cut) if _is_frame(sentences1) else (scores >= cut).astype(np.int64)

    # --- sentences --------------------------------------------------------------------------
    def _bi_encoder(self, what: str) -> BiEncoder:
        if not isinstance(self.module, BiEncoder):
            raise STSError(
                f"{what} needs sentence embeddings, and a {self.architecture} has none (it reads both sentences together); "
                "use a bi-encoder (sts.load() or a model trained with model=bi_encoder)" + (", and pass this model as rerank=" if what == "mining" else "")
            )
        return self.module

    def embed(self, sentences: Any, *, progress: str | bool = False, chunk_size: int = CHUNK) -> np.ndarray:
        """Pooled embeddings (N x hidden, float32) in input order; bi-encoders only. `progress`:
        a bar stepping every `chunk_size` sentences (True, or "auto": on a terminal only)."""
        module = self._bi_encoder("embed")
        texts = _texts("sentences", sentences)
        if not texts:
            return np.empty((0, module.encoder.config.hidden_size), np.float32)
        return np.concatenate(list(self.embed_stream(texts, progress=progress, chunk_size=chunk_size)))

    def embed_stream(self, sentences: Iterable[str], *, progress: str | bool = False, chunk_size: int = CHUNK) -> Iterator[np.ndarray]:
        """`embed`, a chunk at a time: yields chunk_size x hidden arrays (the last shorter) as it
        reads `sentences`, which may be any iterable, a generator over a file included; for corpora
        whose embeddings do not fit in memory (write each chunk, e.g. to a .npy as embed.py does).
        The chunks, concatenated, are `embed(sentences)`."""
        self._bi_encoder("embed")
        if chunk_size < 1:
            raise STSError(f"chunk_size={chunk_size}: must be at least 1")
        if not isinstance(sentences, Iterable):
            raise STSError(f"sentences: expected an iterable of sentences, got {type(sentences).__name__}")
        total = 1 if isinstance(sentences, str) else len(sentences) if isinstance(sentences, Sized) else None
        source = iter([sentences] if isinstance(sentences, str) else sentences)
        texts = (_texts("sentences", list(itertools.islice(source, chunk_size)), start) for start in itertools.count(0, chunk_size))
        return self._stream(itertools.takewhile(bool, texts), self.scorer.embed, total, progress, "sentences", "embedding")

    @staticmethod
    def _stream(parts: Iterable[Any], run: Callable[[Any], np.ndarray], total: int | None, show: str | bool, unit: str, desc: str) -> Iterator[np.ndarray]:
        """run(part) for each part, yielded as it is done, with a progress bar: the one
        chunk-and-progress loop behind score, label, embed and mine (and so evaluate and embed.py)."""
        with progress_bar(total, show, unit=unit, desc=desc) as bar:
            for part in parts:
                result = run(part)
                yield result
                bar.update(len(result))

    @classmethod
    def _in_chunks(cls, run: Callable[[int, int], np.ndarray], total: int, show: str | bool = False, chunk_size: int = CHUNK, unit: str = "pairs",
                   desc: str = "scoring") -> np.ndarray:
        """run(start, stop) over consecutive chunks of `total` items, concatenated."""
        if total == 0:
            return np.empty(0, np.float32)
        ranges = ((start, min(start + chunk_size, total)) for start in range(0, total, chunk_size))
        return np.concatenate(list(cls._stream(ranges, lambda r: run(*r), total, show, unit, desc)))

    def mine(
        self,
        sentences: Any,
        top_k: int | None = None,
        threshold: float | None = None,
        max_pairs: int = MAX_PAIRS,
        rerank: Model | None = None,
        progress: str | bool = False,
        index: str = "auto",
        ann: ANN | None = None,
        embeddings: np.ndarray | str | Path | None = None,
    ) -> list[MinedPair]:
        """Pairs of distinct sentences of one corpus (repeats counted once), best first.

        `top_k=None`: every pair whose score reaches `threshold` (default: the model's own);
        `top_k=k`: each sentence's k best partners, whatever their score (`lbl` says which reach
        it). `rerank`: a cross-encoder re-scores these candidates and labels at its threshold
        (without top_k, only the pairs it labels 1 are kept). At most `max_pairs`, the best.
        `progress`: a bar while embedding (True, or "auto": on a terminal only).
        `index`: exact (every pair compared), faiss (an approximate nearest-neighbour index built
        as `ann` says, sts.core.ann.ANN; needs `sts[ann]`) or auto (faiss from `ann.auto_from`
        distinct sentences when installed). With faiss the embeddings are computed a chunk at a
        time into a temporary .npy (under TMPDIR) and indexed from there, so memory holds the
        index, not two copies of the corpus. `embeddings`: this model's embeddings of `sentences`
        (an N x dim array, or the .npy embed.py wrote for the same input), used instead of
        embedding again; a file is read a chunk at a time."""
        module = self._bi_encoder("mining")
        if rerank is not None and not isinstance(rerank, Model):
            raise STSError(f"rerank: expected a model from sts.load(), got {type(rerank).__name__}")
        texts = _texts("sentences", sentences)
        cut = self._threshold(threshold)
        seen: dict[str, int] = {}
        for row, text in enumerate(texts):
            seen.setdefault(text, row)
        keep = np.zeros(len(texts), dtype=bool)
        keep[list(seen.values())] = True
        corpus = list(seen)
        settings = ann or ANN()
        how, _ = choose(index, len(corpus), settings)
        if how == "faiss":
            faiss_module()  # FAISS missing is said before the corpus is embedded, not after
        calibration = self.scorer.calibration if module.head is None else None
        # scores are cosines clipped to 0-1, so a threshold of 0 admits negative cosines too;
        # calibrated, the search runs on cosines from the lowest one whose probability reaches the cut
        search = (cut if cut > 0 else -2.0) if calibration is None else min(max(calibration.inverse(cut), -2.0), 2.0)
        with ExitStack() as stack:
            source = self._corpus_embeddings(texts, keep, corpus, embeddings, how == "faiss", stack, progress)
            candidates = similar_pairs(source, top_k, None if top_k else search, max_pairs, settings if how == "faiss" else None)
        first, second = [corpus[i] for i in candidates[0]], [corpus[j] for j in candidates[1]]
        if module.head is not None or rerank is not None:  # a frozen head, or a cross-encoder, gives the scores
            scorer = rerank if rerank is not None else self
            cut = scorer.threshold if rerank is not None else cut
            scores = scorer.score(first, second) if first else np.empty(0, np.float32)
        else:
            cosines = np.asarray(candidates[2], dtype=np.float32)
            scores = np.clip(cosines, 0.0, 1.0) if calibration is None else calibration.apply(cosines, module.threshold)
        pairs = [MinedPair(a, b, float(s), int(s >= cut)) for a, b, s in zip(first, second, scores)]
        if top_k is None:
            pairs = [p for p in pairs if p.lbl]
        return sorted(pairs, key=lambda p: -p.score)

    def _corpus_embeddings(self, texts: list[str], keep: np.ndarray, corpus: list[str], given: np.ndarray | str | Path | None, spool: bool,
                           stack: ExitStack, progress: str | bool) -> np.ndarray | Embeddings:
        """The embeddings of `corpus` (the rows of `texts` where `keep`): those given (checked
        against the input and this model), else computed: in memory, or with `spool` a chunk at a
        time into a temporary .npy that lives as long as `stack`."""
        width = self.module.encoder.config.hidden_size
        if given is not None:
            if isinstance(given, (str, Path)):
                source: Embeddings = EmbeddingsFile(given, rows=len(texts), width=width)
            else:
                array = np.asarray(given)
                if array.shape != (len(texts), width) or not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
                    raise STSError(f"embeddings: expected {len(texts)} x {width} finite floats (one row per sentence, this model's width), got {array.dtype} {array.shape}")
                source = InMemory(array)
            return source if keep.all() else Selected(source, keep)
        if not spool or len(corpus) < 2:
            return self.embed(corpus, progress=progress)
        path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sts-mine-"))) / "embeddings.npy"
        with open(path, "wb") as handle:
            write_npy(handle, self.embed_stream(corpus, progress=progress), len(corpus))
        return EmbeddingsFile(path)


@dataclass(frozen=True)
class Description:
    """A model as `describe` reads it: everything but its network. What a server's HTTP process
    needs (the tokenizer to count a request's tokens, the embeddings' width, /info) without
    importing the network's code or loading weights; its workers `load` the model itself."""

    architecture: str
    tokenizer: Any
    encoder: Any  # the encoder's transformers config
    max_length: int
    pooling: str | None
    both_orders: bool | None
    threshold: float
    origin: dict[str, Any]
    graph: Path | None = None  # an ONNX export's model.onnx: only backend=onnx | openvino run it
    calibration: Calibration | None = None

    @property
    def inputs(self) -> PairInputs:
        return PairInputs(self.tokenizer, self.max_length, self.architecture == "CrossEncoder")

    @property
    def dimensions(self) -> int | None:
        """The width of the sentence embeddings (bi-encoders; None for a cross-encoder)."""
        return None if self.architecture == "CrossEncoder" else int(self.encoder.hidden_size)

    def info(self, precision: str = "auto", device: str = "cpu", backend: str = "auto", quantize: str | None = None, calibrated: bool = False,
             long_inputs: str | LongInputs | None = None, pad_to_multiple_of: int = 1) -> dict[str, Any]:
        """`Model.info` as `load` with these settings would give it: the backend and precision a
        scorer plans on this host (sts.core.scorer.plan; OpenVINO may compile another float
        precision than asked on a CPU without it, which only the loaded model can read back)."""
        from sts.core.scorer import plan

        backend, _, ran = plan(precision, device, backend, quantize, self.architecture == "CrossEncoder", self.graph)
        if calibrated and self.calibration is None:
            raise STSError(MISSING)
        threshold = self.calibration.at(self.threshold) if calibrated and self.calibration is not None else self.threshold
        return model_info(self.architecture, self.encoder, self.max_length, self.pooling, self.both_orders, threshold, ran, backend, self.origin,
                          self.calibration, calibrated, LongInputs.of(long_inputs).mode, pad_to_multiple_of)


def describe(path: str | Path | None = None, *, both_orders: bool | None = None, pooling: str | None = None, max_length: int | None = None) -> Description:
    """The model `load(path, ...)` would give, read and checked as `load` reads it (every field of
    a model file, a folder's config, tokenizer and declared pooling) but without building its
    network or reading its weights into one."""
    from sts.io import bundled, checkpoint, onnx_folder, pretrained

    file_like = _file_like(path)
    _check_overrides(path, file_like, pooling, max_length)
    if path is None:
        tokenizer, encoder = bundled.parts()
        record = bundled.record()
        found = Description("BiEncoder", tokenizer, encoder, bundled.MAX_LENGTH, bundled.POOLING, None, float(record["threshold"]),
                            _bundled_origin(record), calibration=bundled.calibration(record))
    elif file_like:
        payload, tokenizer, encoder = checkpoint.describe(path)
        hp = payload["hparams"]
        cross = payload["architecture"] == "CrossEncoder"
        found = Description(payload["architecture"], tokenizer, encoder, hp.get("max_length", 128), hp.get("pooling", "cls" if cross else "mean"),
                            hp.get("both_orders", False) if cross else None, float(payload["threshold"]), file_origin(path, payload.get("metrics", {}), hparams_rules.split(hp)[1]),
                            calibration=Calibration.from_record(payload["calibration"]) if payload.get("calibration") else None)
    elif onnx_folder.is_export(path):
        export = onnx_folder.read(path)
        meta = export.meta
        found = Description(meta["architecture"], export.tokenizer, export.config, meta["max_length"], meta["pooling"],
                            meta["both_orders"] if meta["architecture"] == "CrossEncoder" else None, meta["threshold"],
                            _folder_origin(path, export.info), graph=export.graph, calibration=pretrained.probability(Path(path)))
    else:
        architecture, tokenizer, encoder, length, pooled, threshold, folder_info = pretrained.describe(str(path), pooling, max_length)
        found = Description(architecture, tokenizer, encoder, length, pooled, False if architecture == "CrossEncoder" else None, threshold, _folder_origin(path, folder_info),
                            calibration=pretrained.probability(Path(path)))
    if both_orders is not None:
        if found.architecture != "CrossEncoder":
            if both_orders:
                raise STSError(f"both_orders=true: the model is a {found.architecture}, whose cosine is symmetric already; only cross-encoders take it")
        else:
            found = replace(found, both_orders=bool(both_orders))
    if found.architecture == "CrossEncoder" and pooling is not None and pooling != found.pooling:
        raise STSError(f"pooling={pooling}: this cross-encoder pools with {found.pooling}")
    return found


def _file_like(path: str | Path | None) -> bool:
    return path is not None and (Path(path).suffix in CHECKPOINT_SUFFIXES or (Path(path).exists() and not Path(path).is_dir()))


def _check_overrides(path: str | Path | None, file_like: bool, pooling: str | None, max_length: int | None) -> None:
    from sts.io import onnx_folder

    if (pooling is not None or max_length is not None) and (path is None or file_like or onnx_folder.is_export(path)):
        raise STSError("pooling= and max_length= apply to an encoder folder or Hugging Face id; a model file, an ONNX export and the bundled model carry their own")


def _bundled_origin(record: dict[str, Any]) -> dict[str, Any]:
    from sts.io import bundled

    return {
        "source": "bundled",
        "name": bundled.NAME,
        "threshold_source": "STS-B dev, F1-maximising (python -m sts.commands.calibrate)",
        "metrics": {f"{split}/{k}": v for split in ("val", "test") for k, v in record[split].items()},
        "made_by": "zero-shot: the pretrained encoder, mean pooling, cosine; no training",
    }


def _folder_origin(path: str | Path, folder_info: dict[str, Any]) -> dict[str, Any]:
    return {"source": str(path), **folder_info, "made_by": "an exported or pretrained folder"}


def _source(path: str | Path | None) -> str:
    return "bundled" if path is None else str(path)


def load(
    path: str | Path | None = None,
    *,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int = 64,
    both_orders: bool | None = None,
    pooling: str | None = None,
    max_length: int | None = None,
    backend: str = "auto",
    quantize: str | None = None,
    calibration: Sequence[str] | None = None,
    calibrated: bool = False,
    long_inputs: str | LongInputs = "truncate",
    pad_to_multiple_of: int = 1,
) -> Model:
    """A model to score with.

    `path`: None (the bundled all-MiniLM-L6-v2, zero-shot, threshold calibrated on STS-B dev),
    a model.pt or Lightning .ckpt from train.py (checked field by field, never unpickled), an
    exported Hugging Face / sentence-transformers folder, an ONNX export (export.py format=onnx:
    its graph runs with backend onnx, the default there, or openvino; torch is refused), or a
    Hugging Face id when online.
    `both_orders` overrides how a cross-encoder scores; `pooling` and `max_length` apply to
    encoder folders and ids only (a model file carries its own). `backend="onnx"` runs the
    network in ONNX Runtime, int8 (`quantize`), `backend="openvino"` in OpenVINO (bf16 where the
    CPU has AMX, int8 with quantize="static"); the default `auto` picks torch where the hardware
    has native bf16 and an int8 or fp32 graph on other CPUs by their int8 dot products
    (sts.core.precision.choose_backend); see
    sts.core.backends for what each costs. `calibrated=True` scores probabilities of "similar"
    (the model's calibration, fitted on dev; refused for a model without one) and maps the
    threshold through the same monotone map, so labels stay as they are. `long_inputs="chunk"`
    reads a text longer than the model's max_length whole, in overlapping windows, instead of
    its first max_length tokens; `sts.LongInputs(...)` sets the windows' overlap, a
    cross-encoder's reduction and the cap on windows (docs/concepts.md, "Long inputs").
    `pad_to_multiple_of` pads each batch to a multiple of that many tokens: the same scores, from
    fewer input shapes (serve.py's default, 8; docs/performance.md)."""
    from sts.io import bundled, checkpoint, onnx_folder, pretrained

    long = LongInputs.of(long_inputs)  # a wrong value is refused before a model is read
    file_like = _file_like(path)
    _check_overrides(path, file_like, pooling, max_length)
    if path is None:
        module: PairModel = bundled.module()
        record = bundled.record()
        module.threshold = float(record["threshold"])
        module.calibration = bundled.calibration(record)
        info = _bundled_origin(record)
    elif file_like:
        module = checkpoint.load(path)
        info = file_origin(path, dict(module.checkpoint_metrics), module.trained_with)
    elif onnx_folder.is_export(path):
        module, folder_info = onnx_folder.load(path)
        info = _folder_origin(path, folder_info)
    else:
        module, folder_info = pretrained.load(str(path), pooling, max_length)
        info = _folder_origin(path, folder_info)
    set_both_orders(module, both_orders)
    if isinstance(module, CrossEncoder) and pooling is not None and pooling != module.pooling:
        raise STSError(f"pooling={pooling}: this cross-encoder pools with {module.pooling}")
    return Model(module, info, batch_size=batch_size, precision=precision, device=device, backend=backend, quantize=quantize, calibration=calibration,
                 calibrated=calibrated, long_inputs=long, pad_to_multiple_of=pad_to_multiple_of)
