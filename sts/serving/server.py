"""serve(cfg): a model behind HTTP with LitServe: dynamic batching, workers per device, /health.

Endpoints: POST /v1/score (pairs -> score and lbl), POST /v1/embeddings (OpenAI-compatible;
bi-encoders), POST /v1/rerank (Cohere's and Jina's schema), POST /rerank, /similarity and
/predict (text-embeddings-inference's schemas), GET /metrics (Prometheus, sts.serving.metrics),
GET /health and GET /info (LitServe's own; /info carries the model's record). With `api_key`
every endpoint but /health needs `Authorization: Bearer <key>`.

Requests are validated completely in the HTTP process, before they join a batch (LitServe decodes
a batch together, so one bad request must never get that far), by the pydantic models below:
unknown fields, wrong types, non-finite numbers, empty sentences, text that is not UTF-8, options
the model does not support and the size limits (tokens included) are a 422 naming the field. A
batch of requests is then scored as one call to `Model.score` / `Model.embed`, so predict.py's
length sorting and once-per-batch encoding of repeated sentences apply across clients; if that
call fails, each request is scored alone and only the one that fails gets the error (issue 37).
Every endpoint's requests share one queue and one model per inference worker. Work beyond
`max_queued` pairs in flight is refused at once (429 with Retry-After), a request waits at most
`timeout` seconds (504), and an inference worker that dies is restarted by LitServe (its
in-flight requests get their 504 at the timeout).
"""
# no `from __future__ import annotations`: LitServe reads decode_request's annotation at run time
# to let FastAPI validate the request body with it
import asyncio
import base64
import ctypes
import functools
import hmac
import logging
import math
import multiprocessing
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from queue import Empty
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictStr, ValidationInfo, field_validator, model_validator

from sts import __version__

from sts.core.inputs import PairInputs
from sts.errors import STSError
from sts.serving.metrics import counting, exposition, metrics, shared_folder

try:
    import litserve as ls
    from litserve.loops import BatchedLoop
    from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
    from litserve.utils import LitAPIStatus, LoopResponseType, PickleableHTTPException
except ImportError:
    raise STSError("serve.py needs the serve extra: pip install 'sts[serve]' (LitServe)") from None

log = logging.getLogger(__name__)


class Limits:
    """Request limits and what the model supports, set once in the serving process before the
    HTTP workers fork: a request is checked against them before it can join a batch."""

    max_pairs: ClassVar[int] = 10_000
    max_chars: ClassVar[int] = 10_000
    max_tokens: ClassVar[int] = 10_000 * 512
    dimensions: ClassVar[int | None] = None  # the embeddings' width (bi-encoders)
    inputs: ClassVar[PairInputs | None] = None  # the model's tokenizer, to count a request's tokens
    both_orders: ClassVar[bool] = False  # a cross-encoder reading each pair twice: twice the tokens


def _sentence(value: str, where: str) -> str:
    if not value.strip():
        raise ValueError(f"{where} is empty or whitespace")
    if len(value) > Limits.max_chars:
        raise ValueError(f"{where} has {len(value)} characters; at most {Limits.max_chars} (max_chars)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate ("\ud800" in JSON): no tokenizer takes it
        raise ValueError(f"{where} is not valid UTF-8 ({e.reason} at character {e.start})") from None
    return value


def _check_tokens(count: Callable[[PairInputs], int], what: str) -> int | None:
    """The request's work bound: its tokens as the model reads them (truncated, or with
    long_inputs=chunk every window's, overlaps and special tokens included) at most max_tokens;
    an input beyond chunk_max_windows is refused here too. The count (None without a model)."""
    if Limits.inputs is None:
        return None
    try:
        tokens = count(Limits.inputs)
    except STSError as e:
        raise ValueError(f"{what}: {e}") from None
    if tokens > Limits.max_tokens:
        raise ValueError(f"{what} have {tokens} tokens; at most {Limits.max_tokens} per request (max_tokens)")
    return tokens


def _refuse_truncation(first: list[str], second: list[str], item: Callable[[int], str], query: bool = False) -> None:
    """TEI's truncate=false: an input longer than the model reads (max_length tokens with its
    special tokens; a cross-encoder's pair joined) is refused, not cut; `item(k)` names input k.
    With long_inputs=chunk nothing is cut: every input is read whole. `query`: `first` repeats
    one query (rerank)."""
    inputs = Limits.inputs
    if inputs is None or inputs.long.chunk:
        return
    if query and not inputs.joined:  # a bi-encoder reads the query alone, then each text alone
        checks = [(inputs.whole_lengths(first[:1]), lambda k: "query", ""), (inputs.whole_lengths(second), item, "")]
    else:
        checks = [(inputs.whole_lengths(first, second), item, " with the query" if query else "")]
    for lengths, name, company in checks:
        for k, tokens in enumerate(lengths.tolist()):
            if tokens > inputs.max_length:
                raise ValueError(f"{name(k)} has {tokens} tokens{company}; the model reads at most {inputs.max_length} (encoder.max_length) "
                                 "and truncate=false refuses to cut it (send truncate=true, or serve with long_inputs=chunk)")


def _sentences(values: list[str], name: str) -> list[str]:
    """A request's list of sentences: at most max_pairs, each a sentence (`_sentence`)."""
    if len(values) > Limits.max_pairs:
        raise ValueError(f"{len(values)} {name}; at most {Limits.max_pairs} per request (max_pairs)")
    for k, value in enumerate(values):
        _sentence(value, f"{name}[{k}]")
    return values


def _checked_pairs(pairs: list[list[str]], name: str) -> list[list[str]]:
    """A request's pairs: at most max_pairs, each side a sentence (`_sentence`)."""
    if len(pairs) > Limits.max_pairs:
        raise ValueError(f"{len(pairs)} pairs; at most {Limits.max_pairs} per request (max_pairs)")
    for k, (first, second) in enumerate(pairs):
        _sentence(first, f"{name}[{k}][0]")
        _sentence(second, f"{name}[{k}][1]")
    return pairs


def _checked(value: Any, info: ValidationInfo) -> Any:
    """Field validator of a sentence field (one string, or a list of strings or documents)."""
    if isinstance(value, str):
        return _sentence(value, info.field_name)
    _sentences([v if isinstance(v, str) else v.text for v in value], info.field_name)
    return value


class Work(BaseModel):
    """A request the inference workers answer. `company`: items its HTTP process had admitted and
    not yet answered when it admitted this one (set by `_route`): whether a batch should wait for
    more requests (`ServingLoop`)."""

    _company: int = PrivateAttr(default=0)


class PairRequest(Work):
    """A request whose work is scoring sentence pairs, in whichever endpoint's schema. The worker
    scores the pairs of all such requests of a batch in one `Model.score` call, and each request
    answers from its own scores: every endpoint has /v1/score's validation, limits and batching."""

    model_config = ConfigDict(extra="forbid")

    @property
    def raw(self) -> bool:
        """Scores as metrics use them (a bi-encoder's cosine before it is clipped to 0-1)."""
        return False

    def sides(self) -> tuple[list[str], list[str]]:
        raise NotImplementedError

    def answer(self, scores: np.ndarray, threshold: float, model: str) -> Any:
        raise NotImplementedError

    @model_validator(mode="after")
    def _check_work(self) -> "PairRequest":
        first, second = self.sides()
        _check_tokens(lambda inputs: inputs.work(first, second, Limits.both_orders), "pairs")
        return self


class ScoreRequest(PairRequest):
    """POST /v1/score: {"pairs": [["s1", "s2"], ...], "threshold": 0.8 (optional)}"""

    pairs: list[Annotated[list[StrictStr], Field(min_length=2, max_length=2)]] = Field(min_length=1)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)

    @field_validator("pairs")
    @classmethod
    def _check_pairs(cls, pairs: list[list[str]]) -> list[list[str]]:
        return _checked_pairs(pairs, "pairs")

    def sides(self) -> tuple[list[str], list[str]]:
        return [a for a, _ in self.pairs], [b for _, b in self.pairs]

    def answer(self, scores: np.ndarray, threshold: float, model: str) -> Any:
        cut = float(threshold if self.threshold is None else self.threshold)
        return {"results": [{"score": float(s), "lbl": int(s >= cut)} for s in scores], "threshold": cut, "model": model}


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr


def _ranked(scores: np.ndarray, top_n: int | None) -> list[int]:
    """Indices by descending score (ties in input order), the first top_n."""
    return np.argsort(-scores, kind="stable")[:top_n].tolist()


class RerankRequest(PairRequest):
    """POST /v1/rerank, Cohere's and Jina's schema: {"query", "documents": [str | {"text"}],
    "top_n", "return_documents", "model"} -> {"id", "results": [{"index", "relevance_score",
    "document": {"text"}}]}, best first. A cross-encoder scores each query-document pair, a
    bi-encoder their cosine."""

    query: StrictStr
    documents: list[StrictStr | _Document] = Field(min_length=1)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    model: StrictStr | None = None

    _check = field_validator("query", "documents")(_checked)

    def sides(self) -> tuple[list[str], list[str]]:
        texts = [d if isinstance(d, str) else d.text for d in self.documents]
        return [self.query] * len(texts), texts

    def answer(self, scores: np.ndarray, threshold: float, model: str) -> Any:
        texts = self.sides()[1]
        results = [{"index": i, "relevance_score": float(scores[i]), **({"document": {"text": texts[i]}} if self.return_documents else {})}
                   for i in _ranked(scores, self.top_n)]
        return {"id": uuid.uuid4().hex, "results": results, "meta": {"billed_units": {"search_units": 1}}}


class TeiRerankRequest(PairRequest):
    """POST /rerank, text-embeddings-inference's schema: {"query", "texts", "raw_scores",
    "return_text", "truncate", "truncation_direction"} -> [{"index", "score", "text"}], best first.
    Texts longer than the model's max_length are truncated from the right (TEI's truncate=true,
    and ours when it is left out), or read whole in windows when the server runs with
    long_inputs=chunk; truncate=false refuses (422) a text that would be cut, as TEI does."""

    query: StrictStr
    texts: list[StrictStr] = Field(min_length=1)
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool | None = None
    truncation_direction: Literal["right", "Right"] = "right"

    _check = field_validator("query", "texts")(_checked)

    @property
    def raw(self) -> bool:
        return self.raw_scores

    def sides(self) -> tuple[list[str], list[str]]:
        return [self.query] * len(self.texts), list(self.texts)

    @model_validator(mode="after")
    def _check_truncate(self) -> "TeiRerankRequest":
        if self.truncate is False:
            _refuse_truncation(*self.sides(), lambda k: f"texts[{k}]", query=True)
        return self

    def answer(self, scores: np.ndarray, threshold: float, model: str) -> Any:
        return [{"index": i, "score": float(scores[i]), **({"text": self.texts[i]} if self.return_text else {})} for i in _ranked(scores, None)]


class _SimilarityInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_sentence: StrictStr
    sentences: list[StrictStr] = Field(min_length=1)

    _check = field_validator("source_sentence", "sentences")(_checked)


class SimilarityRequest(PairRequest):
    """POST /similarity, text-embeddings-inference's (and the Hugging Face Inference API's)
    sentence-similarity schema: {"inputs": {"source_sentence", "sentences"}} -> [score, ...]."""

    inputs: _SimilarityInputs
    parameters: dict[str, Any] | None = None

    @field_validator("parameters")
    @classmethod
    def _no_parameters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            raise ValueError(f"parameters {sorted(value)}: none are supported")
        return value

    def sides(self) -> tuple[list[str], list[str]]:
        return [self.inputs.source_sentence] * len(self.inputs.sentences), list(self.inputs.sentences)

    def answer(self, scores: np.ndarray, threshold: float, model: str) -> Any:
        return [float(s) for s in scores]


_Pair = Annotated[list[StrictStr], Field(min_length=2, max_length=2)]


class PredictRequest(PairRequest):
    """POST /predict, text-embeddings-inference's schema for pairs: {"inputs": [s1, s2] or
    [[s1, s2], ...], "raw_scores", "truncate", "truncation_direction"} -> [{"score", "label"}] for
    one pair, a list of those for several; the label is the model's lbl ("1" or "0").
    truncate=false refuses (422) a pair that would be cut, as TEI does; left out, it is cut."""

    inputs: _Pair | list[_Pair]
    raw_scores: bool = False
    truncate: bool | None = None
    truncation_direction: Literal["right", "Right"] = "right"

    @staticmethod
    def _pairs_of(inputs: list[str] | list[list[str]]) -> list[list[str]]:
        """One pair ([s1, s2]) or several, as a list of pairs."""
        return [inputs] if isinstance(inputs[0], str) else inputs  # type: ignore[list-item]

    @field_validator("inputs")
    @classmethod
    def _check_inputs(cls, inputs: list[str] | list[list[str]]) -> list[str] | list[list[str]]:
        if not inputs:
            raise ValueError("inputs is an empty list")
        _checked_pairs(cls._pairs_of(inputs), "inputs")
        return inputs

    @property
    def raw(self) -> bool:
        return self.raw_scores

    def sides(self) -> tuple[list[str], list[str]]:
        pairs = self._pairs_of(self.inputs)
        return [a for a, _ in pairs], [b for _, b in pairs]

    @model_validator(mode="after")
    def _check_truncate(self) -> "PredictRequest":
        if self.truncate is False:
            one = isinstance(self.inputs[0], str)
            _refuse_truncation(*self.sides(), lambda k: "inputs" if one else f"inputs[{k}]")
        return self

    def answer(self, scores: np.ndarray, threshold: float, model: str) -> Any:
        answers = [[{"score": float(s), "label": str(int(s >= threshold))}] for s in scores]
        return answers[0] if isinstance(self.inputs[0], str) else answers


class EmbeddingRequest(Work):
    """OpenAI's embeddings request: {"input": str | [str, ...], "model": ..., "encoding_format": ...}"""

    model_config = ConfigDict(extra="forbid")
    input: StrictStr | list[StrictStr]
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: StrictStr | None = None
    _tokens: int | None = PrivateAttr(default=None)  # counted by the HTTP front-end: the answer's usage

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input

    @field_validator("input")
    @classmethod
    def _check_input(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("input is an empty list")
        if len(texts) > Limits.max_pairs:
            raise ValueError(f"{len(texts)} inputs; at most {Limits.max_pairs} per request (max_pairs)")
        for k, text in enumerate(texts):
            _sentence(text, f"input[{k}]")
        return value

    @model_validator(mode="after")
    def _check_work(self) -> "EmbeddingRequest":
        self._tokens = _check_tokens(lambda inputs: inputs.work(self.texts), "inputs")
        return self

    @field_validator("dimensions")
    @classmethod
    def _check_dimensions(cls, value: int | None) -> int | None:
        if value is not None and value != Limits.dimensions:
            raise ValueError(f"dimensions={value}: this model's embeddings have {Limits.dimensions} dimensions")
        return value


class ServingLoop(BatchedLoop):
    """LitServe's batched loop, changed in two ways. A batch waits for more requests only when more
    are coming: when none of its requests was admitted alongside other work (a lone client, big
    request or small) it takes what is already queued and closes at once; otherwise it waits up to
    batch_timeout after its first request (LitServe's waited from when the worker asked, whether or
    not anyone was coming). Requests are not cut at a forward pass's worth: a batch of several
    clients' requests is length-sorted together, which pays for the few milliseconds of waiting.
    And an HTTPException that encode_response returns (rather than raises, which would fail the
    whole batch) is the error response of that one request."""

    def get_batch_requests(self, lit_api: ls.LitAPI, request_queue: Any, transport: Any) -> tuple[list, list]:  # noqa: D102
        taken: list[tuple[int, str, Work]] = []
        late: list[tuple[int, str]] = []
        coming, deadline = False, 0.0
        while len(taken) < lit_api.max_batch_size:
            wait = 0.05 if not taken else deadline - time.monotonic() if coming else 0.0
            try:
                found = request_queue.get(timeout=wait) if wait > 0 else request_queue.get_nowait()
            except Empty:
                if taken and coming and deadline > time.monotonic():
                    continue
                break
            if found == _SENTINEL_VALUE:
                raise _StopLoopError()
            queue_id, uid, since, request = found
            self.put_response(transport, queue_id, uid, (), LitAPIStatus.START, LoopResponseType.REGULAR)
            if lit_api.request_timeout not in (-1, False) and time.monotonic() - since > lit_api.request_timeout:
                late.append((queue_id, uid))
                continue
            if not taken:
                deadline = time.monotonic() + lit_api.batch_timeout
            taken.append((queue_id, uid, request))
            coming = coming or request._company > 0
        return taken, late

    def put_response(self, transport: Any, response_queue_id: int, uid: str, response_data: Any, status: LitAPIStatus, response_type: Any) -> None:  # noqa: D102
        if status == LitAPIStatus.OK and isinstance(response_data, HTTPException):
            response_data, status = PickleableHTTPException.from_exception(response_data), LitAPIStatus.ERROR
        super().put_response(transport, response_queue_id, uid, response_data, status, response_type)


def _isolated(batch: list[Any], run: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """run(batch), one output per request; if it fails, each request is run alone, so that only
    the request that fails gets an error (an HTTPException as its output) and the others an answer."""
    try:
        return run(batch)
    except Exception:
        return [_alone(r, run) for r in batch]


def _alone(request: Any, run: Callable[[list[Any]], list[Any]]) -> Any:
    """One request run alone: its output, or the HTTPException (500, one line) that answers it."""
    try:
        return run([request])[0]
    except STSError as e:
        log.error("a request failed: %s", e)
        return HTTPException(500, detail=str(e))
    except Exception:
        log.exception("a request failed")
        return HTTPException(500, detail="scoring this request failed; the server's log has the error")


class _OneLineSetupError(logging.Filter):
    """A worker whose model fails to load (a check `describe` cannot make: the weights themselves)
    logs our one-line error, not LitServe's traceback; the server then stops (`serve`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, STSError):
            record.msg, record.args, record.exc_info, record.exc_text = f"the inference worker cannot load the model: {error}", (), None, None
        return True


def _return_freed_memory(threshold: int | None) -> bool:
    """In an inference worker: allocations of at least `threshold` bytes mapped apart, and the heap
    trimmed beyond it (glibc's mallopt), so that a batch's freed activations go back to the system
    instead of staying in the heap (serve.yaml `malloc_mmap_threshold`). Whether it was applied."""
    if threshold is None:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): its allocator's own policy
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, int(threshold))) and bool(libc.mallopt(m_trim_threshold, int(threshold)))


class PairAPI(ls.LitAPI):
    """Every endpoint's requests in one inference worker holding one model (RSS: the HTTP
    front-end plus one model per worker). `build` routes every endpoint into this API's one queue
    (`_route`), each with its own request model, so a batch may mix them: `predict` scores each
    kind in one call and answers each request in its place."""

    def __init__(self, ckpt: str | None, settings: dict[str, Any], threads: int | None, mmap_threshold: int | None = None, **kwargs: Any) -> None:  # noqa: D107
        super().__init__(**kwargs)
        self.ckpt, self.settings, self.threads, self.mmap_threshold = ckpt, settings, threads, mmap_threshold

    def setup(self, device: str) -> None:
        _return_freed_memory(self.mmap_threshold)
        import torch

        import sts

        logging.getLogger("litserve.loops.loops").addFilter(_OneLineSetupError())
        if self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        self.model = sts.load(self.ckpt, **(self.settings | {"device": device}))
        self.source = self.model.info["source"]
        metrics().load.set(time.perf_counter() - start)

    def decode_request(self, request: ScoreRequest) -> BaseModel:
        return request

    def batch(self, requests: list[BaseModel]) -> list[BaseModel]:
        return requests

    def predict(self, requests: list[BaseModel]) -> list[Any]:
        """Each request's answer (or its HTTPException), in batch order: the pair requests of
        every endpoint scored together (one call per kind of score), the embedding requests in one."""
        runs: dict[str, Callable[[list[Any]], list[Any]]] = {
            "scores": functools.partial(self._scores, clip=True),
            "raw scores": functools.partial(self._scores, clip=False),
            "embeddings": self._embed,
        }
        kinds = ["embeddings" if isinstance(r, EmbeddingRequest) else "raw scores" if r.raw else "scores" for r in requests]
        metrics().batches.observe(len(requests))
        outputs: list[Any] = [None] * len(requests)
        for kind, run in runs.items():
            where = [k for k, found in enumerate(kinds) if found == kind]
            if where:
                for k, output in zip(where, _isolated([requests[k] for k in where], run)):
                    outputs[k] = output
        return outputs

    def unbatch(self, outputs: list[Any]) -> list[Any]:
        return outputs

    def encode_response(self, output: dict[str, Any] | HTTPException) -> Any:  # FastAPI's response model: any JSON
        return output  # the answer, or this request's error (ServingLoop answers it as one)

    def _scores(self, batch: list[PairRequest], clip: bool) -> list[Any]:
        """Pair requests of any endpoint: their pairs scored in one call, each answered from its own."""
        sides = [r.sides() for r in batch]
        metrics().items.labels("pairs").inc(sum(len(first) for first, _ in sides))
        scores = self.model.score([a for first, _ in sides for a in first], [b for _, second in sides for b in second], clip=clip)
        out, start = [], 0
        for r, (first, _) in zip(batch, sides):
            out.append(r.answer(scores[start : start + len(first)], self.model.threshold, self.source))
            start += len(first)
        return out

    def _embed(self, batch: list[EmbeddingRequest]) -> list[dict[str, Any]]:
        """POST /v1/embeddings in OpenAI's format (the OpenAI client works unchanged)."""
        flat = [t for r in batch for t in r.texts]
        metrics().items.labels("sentences").inc(len(flat))
        embeddings = self.model.embed(flat)
        # unit length, as OpenAI's are: a dot product is then the cosine the model scores with
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
        out, start = [], 0
        for r in batch:
            part = slice(start, start + len(r.texts))
            start += len(r.texts)
            as_base64 = r.encoding_format == "base64"
            data = [{"object": "embedding", "index": k, "embedding": _base64(v) if as_base64 else v.tolist()} for k, v in enumerate(embeddings[part])]
            used = r._tokens  # every window's with long_inputs=chunk, counted where the request was checked
            out.append({"object": "list", "data": data, "model": self.source, "usage": {"prompt_tokens": used, "total_tokens": used}})
        return out


def _base64(vector: np.ndarray) -> str:
    """OpenAI's base64 encoding of an embedding: little-endian float32."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


class Backlog:
    """Work (pairs, or sentences to embed) admitted by this HTTP process and not yet answered,
    bounded so that what is admitted can be answered within the timeout: beyond the bound a request
    is refused at once with 429 and Retry-After (as TEI's max_concurrent_requests does), never left
    to wait for a 504. A request is always admitted when nothing is pending. With `limit=None` the
    bound follows the measured rate: the items answered per second while work was pending, times
    half the timeout (START until a first answer)."""

    START = 1024

    def __init__(self, limit: int | None, timeout: float) -> None:  # noqa: D107
        self.limit, self.timeout = limit, timeout
        self.pending = 0
        self.answered, self.busy_s = 0.0, 0.0  # items answered and seconds spent with work pending
        self._since: float | None = None  # start of the current busy stretch not yet counted

    @property
    def rate(self) -> float | None:
        return self.answered / self.busy_s if self.busy_s > 0 else None

    @property
    def bound(self) -> float:
        if self.limit is not None:
            return self.limit
        return self.START if self.rate is None else max(self.rate * self.timeout / 2, 1.0)

    @property
    def full(self) -> bool:
        """No request can be admitted now, whatever its size: checked before a request's body is
        read and validated, so that refusing costs the HTTP process next to nothing under overload."""
        return bool(self.pending) and self.pending >= self.bound

    def refusal(self) -> JSONResponse:
        """429 with Retry-After: the seconds the pending work takes at the measured rate (at least 1)."""
        wait = max(math.ceil(self.pending / self.rate), 1) if self.rate else 1
        detail = f"overloaded: {self.pending} items queued, at most {self.bound:.0f} (max_queued); retry after {wait} s"
        return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": str(wait)})

    def admit(self, items: int) -> bool:
        """Whether the request is admitted (then call `done` once it is answered)."""
        if self.pending and self.pending + items > self.bound:
            return False
        if not self.pending:
            self._since = time.monotonic()
        self.pending += items
        metrics().queued.set(self.pending)
        return True

    def done(self, items: int) -> None:
        now = time.monotonic()
        if self._since is not None:
            self.busy_s += now - self._since
            self.answered += items
            if self.busy_s > 60:  # the last minute or so counts: the rate follows the load
                self.answered, self.busy_s = self.answered / 2, self.busy_s / 2
        self.pending -= items
        self._since = now if self.pending else None
        metrics().queued.set(self.pending)


# POST endpoints of pair requests, each scored by PairAPI._scores (and /v1/embeddings for bi-encoders)
ENDPOINTS: dict[str, type[PairRequest]] = {
    "/v1/score": ScoreRequest,
    "/v1/rerank": RerankRequest,
    "/rerank": TeiRerankRequest,
    "/similarity": SimilarityRequest,
    "/predict": PredictRequest,
}


# every POST the backlog admits: the pair endpoints and /v1/embeddings
POSTS = (*ENDPOINTS, "/v1/embeddings")


def _shedding(backlog: Backlog, paths: set[str]) -> Callable[..., Any]:
    """HTTP middleware: a POST to `paths` while the backlog is full is refused before its body is
    read (validating a refused request, tokenizer included, would take the CPU from the workers)."""

    async def shed(request: Request, call_next: Callable[[Request], Any]) -> Any:
        if request.method == "POST" and request.url.path in paths and backlog.full:
            await request.body()  # read, not parsed: a body left unread would cost the client its keep-alive connection
            return backlog.refusal()
        return await call_next(request)

    return shed


def _items(request: BaseModel) -> int:
    """A request's work as Backlog counts it: its pairs, or its sentences to embed."""
    if isinstance(request, PairRequest):
        return len(request.sides()[0])
    return 1 if isinstance(request.input, str) else len(request.input)


def _route(server: "ls.LitServer", api: PairAPI, backlog: Backlog, path: str, request_type: type[BaseModel]) -> None:
    """POST `path`: requests validated as `request_type` in the HTTP process, admitted by the
    backlog, then scored by the inference workers through their one queue, answered or a 504
    within `backlog.timeout` seconds (LitServe's own timeout only covers the wait in the queue, not
    a running batch or a worker that died). LitServe's own request handler does the queueing
    (litserve is pinned: this is its internal API)."""
    from litserve.server import RegularRequestHandler

    handler = RegularRequestHandler(api, server)

    async def endpoint(request: request_type) -> Any:  # type: ignore[valid-type]
        items = _items(request)
        if not backlog.admit(items):
            return backlog.refusal()
        request._company = backlog.pending - items
        try:
            return await asyncio.wait_for(handler.handle_request(request, request_type), backlog.timeout)
        except TimeoutError:
            return JSONResponse({"detail": f"no result within timeout={backlog.timeout:g} s"}, status_code=504)
        finally:
            backlog.done(items)

    server.app.add_api_route(path, endpoint, methods=["POST"])


def _no_embeddings(architecture: str):
    async def handler() -> None:
        raise HTTPException(400, detail=f"the served model is a {architecture}, which reads both sentences together and has no sentence embeddings; serve a bi-encoder for /v1/embeddings")

    return handler


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, without echoing the input back: an input of NaN or Infinity cannot be
    written as JSON (FastAPI's own handler then fails with a plain-text 500), and a 10,000-character
    sentence need not travel back. Each error keeps where (loc) and what (msg)."""
    detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


PUBLIC = frozenset({"/health", "/"})  # answered without the API key
PAGE = Path(__file__).with_name("page.html")


async def _page() -> HTMLResponse:
    """GET /: a page to try the model in a browser (self-contained: no CDN, works offline)."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


def _require_key(key: str) -> Callable[..., Any]:
    """HTTP middleware: every path but /health and the page (/, which holds no data and asks for
    the key itself) needs `Authorization: Bearer <key>` (401 otherwise), compared in constant time
    (hmac.compare_digest)."""
    expected = f"Bearer {key}".encode()

    async def check(request: Request, call_next: Callable[[Request], Any]) -> Any:
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        if request.url.path not in PUBLIC and not hmac.compare_digest(given, expected):
            return JSONResponse({"detail": "missing or wrong API key: send Authorization: Bearer <api_key>"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    return check


async def _scrape() -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)


def _metadata(info: dict[str, Any]) -> dict[str, Any]:
    """What GET /info says about the model (plain JSON)."""
    return {"version": __version__, **OmegaConf.to_container(OmegaConf.create(info), resolve=True)}


@dataclass(frozen=True)
class Served:
    """What the HTTP front-end needs to know of the served model: the checked scoring options, how
    it reads text (to count a request's tokens) and what /info says. Plain data: `describe_served`
    makes it in a child process, so that this process never loads torch (see `serve`)."""

    settings: dict[str, Any]
    inputs: PairInputs
    dimensions: int | None
    architecture: str
    info: dict[str, Any]


def describe_served(cfg: DictConfig) -> Served:
    """Check cfg's options and read and check the model (`sts.api.describe`: every field, the
    tokenizer, without building the network): a bad option or model fails here in one line."""
    from sts.api import describe
    from sts.config import options, scoring_settings

    options.check(cfg, options.SERVE)
    settings = scoring_settings(cfg)
    model = describe(cfg.ckpt)
    inputs = replace(model.inputs, long=settings["long_inputs"])
    inputs.check()  # a chunk_overlap wider than this model's window: one line here, not a 422 per request
    info = model.info(settings["precision"], settings["device"], settings["backend"], settings["quantize"], settings["calibrated"], settings["long_inputs"],
                      settings["pad_to_multiple_of"])
    return Served(settings, inputs, model.dimensions, model.architecture, info)


def describe_apart(cfg: DictConfig) -> Served:
    """`describe_served` in a spawned process (torch and transformers' models load there, and their
    memory goes with it); its STSError is raised here."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(describe_served, cfg).result()


def build(cfg: DictConfig, served: Served | None = None) -> "ls.LitServer":
    """The LitServer for cfg (not started), validation limits set, for the model `served` describes
    (by default `describe_served(cfg)` in this process); only the inference workers load it."""
    model = served or describe_served(cfg)
    settings = model.settings
    Limits.max_pairs, Limits.max_chars, Limits.inputs = int(cfg.max_pairs), int(cfg.max_chars), model.inputs
    Limits.max_tokens = int(cfg.max_tokens) if cfg.max_tokens is not None else Limits.max_pairs * model.inputs.max_length
    Limits.dimensions, Limits.both_orders = model.dimensions, bool(model.info["both_orders"])
    info = model.info
    batching = {"max_batch_size": int(cfg.max_batch_size), "batch_timeout": float(cfg.batch_timeout), "loop": ServingLoop()}
    api = PairAPI(cfg.ckpt, settings, cfg.threads, cfg.malloc_mmap_threshold, api_path="/v1/score", **batching)
    server = ls.LitServer(
        api,
        accelerator=cfg.device,
        devices=cfg.devices,
        workers_per_device=int(cfg.workers),
        timeout=float(cfg.timeout),
        model_metadata=_metadata(info),
        max_payload_size=int(cfg.max_payload_bytes),
        fast_queue=bool(cfg.fast_queue),
        restart_workers=True,
    )
    server.app.add_exception_handler(RequestValidationError, _validation_error)
    limit = None if cfg.max_queued == "auto" else max(int(cfg.max_queued) // int(cfg.api_servers), 1)
    backlog = Backlog(limit, float(cfg.timeout))
    # middleware runs outermost-last-added: count every answer, then check the key, then shed load
    server.app.middleware("http")(_shedding(backlog, set(POSTS)))
    if cfg.api_key is not None:
        server.app.middleware("http")(_require_key(str(cfg.api_key)))
    server.app.middleware("http")(counting({*POSTS, *PUBLIC, "/metrics", "/info"}))
    # draining on SIGTERM waits for in-flight requests, and none outlives `timeout` (_route);
    # LitServe's fixed 30 s would hold a shutdown after a worker's crash for no request
    server.uvicorn_graceful_timeout = float(cfg.timeout)
    # every endpoint goes through _route (LitServe's own /v1/score route has no backlog), and GET /
    # is our page (LitServe's says "litserve running")
    server.app.router.routes[:] = [r for r in server.app.router.routes if getattr(r, "path", None) not in ("/v1/score", "/")]
    for path, request_type in ENDPOINTS.items():
        _route(server, api, backlog, path, request_type)
    if model.architecture == "BiEncoder":
        _route(server, api, backlog, "/v1/embeddings", EmbeddingRequest)
    else:
        server.app.add_api_route("/v1/embeddings", _no_embeddings(model.architecture), methods=["POST"])
    server.app.add_api_route("/metrics", _scrape, methods=["GET"])
    server.app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    return server


_MAIN_PID = os.getpid()
_SERVER: "ls.LitServer | None" = None


class _WorkerDeaths(logging.Filter):
    """LitServe reports an inference worker's death and restart at INFO, below the server's
    default log level: say those as warnings, and nothing more of LitServe's INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if record.getMessage().startswith("[monitoring] Worker"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        return False


def _say_worker_deaths(log_level: str) -> None:
    """Make worker deaths visible at log levels above INFO (at INFO LitServe says them itself)."""
    if getattr(logging, str(log_level).upper(), logging.WARNING) > logging.INFO:
        monitor = logging.getLogger("litserve.server")
        monitor.setLevel(logging.INFO)
        monitor.addFilter(_WorkerDeaths())


def _drain_on_sigterm(signum: int, frame: object) -> None:
    """In the serving process: LitServe's own Ctrl-C path, where the HTTP workers finish their
    in-flight requests (uvicorn's graceful shutdown) before the inference workers stop. The HTTP
    workers are forked with this handler and re-raise SIGTERM once uvicorn has drained: they exit."""
    if os.getpid() != _MAIN_PID:
        sys.exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already draining: a second SIGTERM changes nothing
    if _SERVER is not None:  # LitServe's worker monitor must not restart the workers it stops now
        _SERVER.restart_workers = False
    raise KeyboardInterrupt


def serve(cfg: DictConfig) -> None:
    """Start the server and block until SIGTERM or SIGINT (both drain in-flight requests). The
    options and the model are checked in a child process (`describe_apart`): this process, and the
    HTTP processes and LitServe's manager it forks, never load torch; only the inference workers do."""
    served = describe_apart(cfg)
    with shared_folder():
        _serve(cfg, served)


def _serve(cfg: DictConfig, served: Served) -> None:
    global _MAIN_PID, _SERVER
    server = _SERVER = build(cfg, served)
    _MAIN_PID = os.getpid()
    signal.signal(signal.SIGTERM, _drain_on_sigterm)
    _say_worker_deaths(cfg.log_level)
    print(f"serving on http://{cfg.host}:{cfg.port} (POST {', '.join(POSTS)}; GET /, /health, /info, /metrics)", file=sys.stderr, flush=True)
    try:
        server.run(host=cfg.host, port=int(cfg.port), num_api_servers=int(cfg.api_servers), generate_client_file=False, log_level=cfg.log_level)
    except OSError as e:
        raise STSError(f"cannot serve on {cfg.host}:{cfg.port} ({e.strerror or e})") from None
    except RuntimeError as e:  # LitServe: a worker's setup failed (its line is above)
        raise STSError(f"the server did not start: {e}") from None
