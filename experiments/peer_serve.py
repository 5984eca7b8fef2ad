"""The serving baseline sentence-transformers' maintainers recommend ("wrap it in FastAPI"):
FastAPI + uvicorn calling `SentenceTransformer.encode` on each request's sentences, cosine per
pair. Same request and response shapes as our POST /v1/score, /v1/rerank (cosine of the query
and each document, best first) and /v1/embeddings (unit length), so one load generator drives both.

    python experiments/peer_serve.py MODEL_FOLDER PORT [THRESHOLD]
"""
from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(sys.argv[1], device="cpu")
THRESHOLD = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
app = FastAPI()


class ScoreRequest(BaseModel):
    pairs: list[list[str]]


@app.get("/health")
def health() -> str:
    return "ok"


@app.post("/v1/score")
def score(request: ScoreRequest) -> dict:
    first = model.encode([p[0] for p in request.pairs], convert_to_tensor=True)
    second = model.encode([p[1] for p in request.pairs], convert_to_tensor=True)
    scores = model.similarity_pairwise(first, second).clamp(0, 1).tolist()
    return {"results": [{"score": s, "lbl": int(s >= THRESHOLD)} for s in scores], "threshold": THRESHOLD}


class RerankRequest(BaseModel):
    query: str
    documents: list[str]
    top_n: int | None = None


@app.post("/v1/rerank")
def rerank(request: RerankRequest) -> dict:
    query = model.encode([request.query], convert_to_tensor=True)
    documents = model.encode(request.documents, convert_to_tensor=True)
    scores = model.similarity(query, documents)[0].clamp(0, 1)
    order = scores.argsort(descending=True)[: request.top_n].tolist()
    return {"results": [{"index": i, "relevance_score": float(scores[i])} for i in order]}


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str | None = None


@app.post("/v1/embeddings")
def embeddings(request: EmbeddingRequest) -> dict:
    texts = [request.input] if isinstance(request.input, str) else request.input
    vectors = model.encode(texts, normalize_embeddings=True)
    return {"object": "list", "data": [{"object": "embedding", "index": k, "embedding": v.tolist()} for k, v in enumerate(vectors)]}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
