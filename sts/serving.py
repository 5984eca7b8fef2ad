"""serve(cfg): a model behind HTTP with LitServe: dynamic batching, workers per device, /health.

Endpoints: POST /v1/score (pairs -> score and lbl), POST /v1/embeddings (OpenAI-compatible;
bi-encoders), GET /health and GET /info (LitServe's own; /info carries the model's record).

Requests are validated in the HTTP process, before they join a batch (LitServe decodes a batch
together, so one bad request must never get that far), by the pydantic models below: unknown
fields, wrong types, empty sentences and the size limits are a 422 naming the field. A batch of
requests is then scored as one call to `Model.score` / `Model.embed`, so predict.py's length
sorting and once-per-batch encoding of repeated sentences apply across clients.
"""
# no `from __future__ import annotations`: LitServe reads decode_request's annotation at run time
# to let FastAPI validate the request body with it
import base64
import os
import signal
import sys
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from fastapi import HTTPException
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from sts import __version__, options
from sts.errors import STSError

try:
    import litserve as ls
except ImportError:
    raise STSError("serve.py needs the serve extra: pip install 'sts[serve]' (LitServe)") from None


class Limits:
    """Request size limits, set once in the serving process before the HTTP workers fork."""

    max_pairs: ClassVar[int] = 10_000
    max_chars: ClassVar[int] = 10_000


def _sentence(value: str, where: str) -> str:
    if not value.strip():
        raise ValueError(f"{where} is empty or whitespace")
    if len(value) > Limits.max_chars:
        raise ValueError(f"{where} has {len(value)} characters; at most {Limits.max_chars} (max_chars)")
    return value


class ScoreRequest(BaseModel):
    """{"pairs": [["s1", "s2"], ...], "threshold": 0.8 (optional)}"""

    model_config = ConfigDict(extra="forbid")
    pairs: list[Annotated[list[StrictStr], Field(min_length=2, max_length=2)]] = Field(min_length=1)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("pairs")
    @classmethod
    def _check_pairs(cls, pairs: list[list[str]]) -> list[list[str]]:
        if len(pairs) > Limits.max_pairs:
            raise ValueError(f"{len(pairs)} pairs; at most {Limits.max_pairs} per request (max_pairs)")
        for k, (first, second) in enumerate(pairs):
            _sentence(first, f"pairs[{k}][0]")
            _sentence(second, f"pairs[{k}][1]")
        return pairs


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request: {"input": str | [str, ...], "model": ..., "encoding_format": ...}"""

    model_config = ConfigDict(extra="forbid")
    input: StrictStr | list[StrictStr]
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: StrictStr | None = None

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


class ScoreAPI(ls.LitAPI):
    """POST /v1/score: each request's pairs, scored in one call with every request of its batch."""

    def __init__(self, ckpt: str | None, settings: dict[str, Any], threads: int | None, **kwargs: Any) -> None:  # noqa: D107
        super().__init__(**kwargs)
        self.ckpt, self.settings, self.threads = ckpt, settings, threads

    def setup(self, device: str) -> None:
        import torch

        import sts

        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = sts.load(self.ckpt, **(self.settings | {"device": device}))

    def decode_request(self, request: ScoreRequest) -> ScoreRequest:
        return request

    def batch(self, requests: list[ScoreRequest]) -> list[ScoreRequest]:
        return requests

    def predict(self, requests: list[ScoreRequest] | ScoreRequest) -> list[dict[str, Any]]:
        batch = requests if isinstance(requests, list) else [requests]
        first = [a for r in batch for a, _ in r.pairs]
        second = [b for r in batch for _, b in r.pairs]
        scores = self.model.score(first, second)
        out, start = [], 0
        for r in batch:
            part = scores[start : start + len(r.pairs)]
            start += len(r.pairs)
            threshold = self.model.threshold if r.threshold is None else r.threshold
            out.append({"scores": part, "threshold": threshold})
        return out if isinstance(requests, list) else out[0]

    def unbatch(self, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return outputs

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        threshold = float(output["threshold"])
        results = [{"score": float(s), "lbl": int(s >= threshold)} for s in output["scores"]]
        return {"results": results, "threshold": threshold, "model": self.model.info["source"]}


class EmbeddingAPI(ScoreAPI):
    """POST /v1/embeddings in OpenAI's format (the OpenAI client works unchanged)."""

    def decode_request(self, request: EmbeddingRequest) -> EmbeddingRequest:
        return request

    def predict(self, requests: list[EmbeddingRequest] | EmbeddingRequest) -> list[dict[str, Any]]:
        batch = requests if isinstance(requests, list) else [requests]
        texts = [[r.input] if isinstance(r.input, str) else r.input for r in batch]
        flat = [t for group in texts for t in group]
        embeddings = self.model.embed(flat)
        # unit length, as OpenAI's are: a dot product is then the cosine the model scores with
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
        tokenizer, limit = self.model.module.tokenizer, self.model.module.max_length
        tokens = [len(ids) for ids in tokenizer(flat, truncation=True, max_length=limit)["input_ids"]]
        out, start = [], 0
        for r, group in zip(batch, texts):
            part = slice(start, start + len(group))
            start += len(group)
            out.append({"embeddings": embeddings[part], "tokens": sum(tokens[part]), "format": r.encoding_format, "dimensions": r.dimensions})
        return out if isinstance(requests, list) else out[0]

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        embeddings = output["embeddings"]
        if output["dimensions"] not in (None, embeddings.shape[1]):
            raise HTTPException(422, detail=f"dimensions={output['dimensions']}: this model's embeddings have {embeddings.shape[1]} dimensions")

        def encoded(vector: np.ndarray) -> list[float] | str:
            if output["format"] == "base64":
                return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
            return vector.tolist()

        data = [{"object": "embedding", "index": k, "embedding": encoded(v)} for k, v in enumerate(embeddings)]
        usage = {"prompt_tokens": output["tokens"], "total_tokens": output["tokens"]}
        return {"object": "list", "data": data, "model": self.model.info["source"], "usage": usage}


def _no_embeddings(architecture: str):
    async def handler() -> None:
        raise HTTPException(400, detail=f"the served model is a {architecture}, which reads both sentences together and has no sentence embeddings; serve a bi-encoder for /v1/embeddings")

    return handler


def _metadata(model: Any) -> dict[str, Any]:
    """What GET /info says about the model (plain JSON)."""
    info = OmegaConf.to_container(OmegaConf.create(model.info), resolve=True)
    return {"version": __version__, **info}


def build(cfg: DictConfig) -> "ls.LitServer":
    """The LitServer for cfg (not started): validation limits set, model checked by loading it once."""
    import sts
    from sts.api import scoring_settings

    Limits.max_pairs, Limits.max_chars = int(cfg.max_pairs), int(cfg.max_chars)
    settings = scoring_settings(cfg)
    model = sts.load(cfg.ckpt, **settings)  # fails here, in one line, not in a worker
    batching = {"max_batch_size": int(cfg.max_batch_size), "batch_timeout": float(cfg.batch_timeout)}
    apis: list[ls.LitAPI] = [ScoreAPI(cfg.ckpt, settings, cfg.threads, api_path="/v1/score", **batching)]
    if model.architecture == "BiEncoder":
        apis.append(EmbeddingAPI(cfg.ckpt, settings, cfg.threads, api_path="/v1/embeddings", **batching))
    server = ls.LitServer(
        apis,
        accelerator=cfg.device,
        devices=cfg.devices,
        workers_per_device=int(cfg.workers),
        timeout=float(cfg.timeout),
        model_metadata=_metadata(model),
        max_payload_size=int(cfg.max_payload_bytes),
        fast_queue=bool(cfg.fast_queue),
    )
    if model.architecture != "BiEncoder":
        server.app.add_api_route("/v1/embeddings", _no_embeddings(model.architecture), methods=["POST"])
    return server


_MAIN_PID = os.getpid()


def _drain_on_sigterm(signum: int, frame: object) -> None:
    """In the serving process: LitServe's own Ctrl-C path, where the HTTP workers finish their
    in-flight requests (uvicorn's graceful shutdown) before the inference workers stop. The HTTP
    workers are forked with this handler and re-raise SIGTERM once uvicorn has drained: they exit."""
    if os.getpid() != _MAIN_PID:
        sys.exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # already draining: a second SIGTERM changes nothing
    raise KeyboardInterrupt


def serve(cfg: DictConfig) -> None:
    """Start the server and block until SIGTERM or SIGINT (both drain in-flight requests)."""
    options.check(cfg, options.SERVE)
    global _MAIN_PID
    server = build(cfg)
    _MAIN_PID = os.getpid()
    signal.signal(signal.SIGTERM, _drain_on_sigterm)
    print(f"serving on http://{cfg.host}:{cfg.port} (POST /v1/score, /v1/embeddings; GET /health, /info)", file=sys.stderr, flush=True)
    try:
        server.run(host=cfg.host, port=int(cfg.port), num_api_servers=int(cfg.api_servers), generate_client_file=False, log_level=cfg.log_level)
    except OSError as e:
        raise STSError(f"cannot serve on {cfg.host}:{cfg.port} ({e.strerror or e})") from None
