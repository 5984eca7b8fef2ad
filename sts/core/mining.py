"""Paraphrase mining: the most similar pairs of distinct sentences within one corpus.

Each sentence is embedded once. Exact search computes cosine similarities one block of rows at a
time (at most `BLOCK_BYTES` of scores in memory, whatever the corpus size); ANN search
(sts.core.ann, FAISS) asks an index for each row's neighbours instead, a chunk of rows at a time.
Either way only the candidates a block yields are kept: each row's `top_k` best partners, or every
partner at or above a threshold, with at most `max_pairs` pairs held at any time, and the result is
the same form (i < j, each pair once, best first). The reference is sentence-transformers'
`util.paraphrase_mining`, which gives the same pairs as exact search for the same top_k.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from sts.core.ann import ANN, build, neighbours
from sts.data.embeddings import Embeddings, InMemory
from sts.errors import STSError

BLOCK_BYTES = 64 * 2**20
MAX_PAIRS = 500_000


class MinedPair(NamedTuple):
    sentence1: str
    sentence2: str
    score: float
    lbl: int


def _keep_best(i: np.ndarray, j: np.ndarray, s: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(s) <= limit:
        return i, j, s
    top = np.argpartition(-s, limit - 1)[:limit]
    return i[top], j[top], s[top]


def _unique(i: np.ndarray, j: np.ndarray, s: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each unordered pair once (as i < j), sorted by score, best first."""
    low, high = np.minimum(i, j), np.maximum(i, j)
    key = low.astype(np.int64) * n + high
    order = np.lexsort((-s, key))  # by pair, best score first within a pair
    key, low, high, s = key[order], low[order], high[order], s[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    low, high, s = low[first], high[first], s[first]
    best = np.argsort(-s, kind="stable")
    return low[best], high[best], s[best]


def similar_pairs(
    embeddings: torch.Tensor | np.ndarray | Embeddings, top_k: int | None = None, min_score: float | None = None, max_pairs: int = MAX_PAIRS,
    ann: ANN | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) of the most similar pairs of distinct rows, i < j, best first.

    `top_k`: each row's k most similar other rows (the union over rows, deduplicated);
    `min_score`: only pairs whose cosine reaches it (with top_k: both). At least one is needed.
    `ann`: find them with a FAISS index built so (sts.core.ann) instead of comparing every pair;
    `embeddings` is then read a chunk at a time (an `Embeddings` file stays on disk)."""
    if top_k is None and min_score is None:
        raise STSError("mining needs top_k (best partners per sentence) or a threshold")
    if top_k is not None and top_k < 1:
        raise STSError(f"top_k={top_k}: must be at least 1")
    if max_pairs < 1:
        raise STSError(f"max_pairs={max_pairs}: must be at least 1")
    source = embeddings if hasattr(embeddings, "chunks") else InMemory(embeddings)
    n = len(source)
    if n < 2:
        blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]] = ()
    elif ann is not None:
        blocks = neighbours(build(source, ann), source, ann, top_k, min_score)
    else:
        whole = embeddings if isinstance(embeddings, (torch.Tensor, np.ndarray)) else np.concatenate(list(source.chunks(BLOCK_BYTES // 4 // source.width or 1)))
        blocks = _exact(F.normalize(torch.as_tensor(whole).float(), dim=-1), top_k, min_score)
    return _collect(blocks, n, max_pairs)


def _exact(unit: torch.Tensor, top_k: int | None, min_score: float | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every pair compared, one block of rows (at most BLOCK_BYTES of scores) at a time."""
    n = len(unit)
    block = max(1, min(n, BLOCK_BYTES // (4 * max(n, 1))))
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n))
        sims = unit[rows] @ unit.T
        sims[torch.arange(len(rows)), rows] = float("-inf")
        if top_k is not None:
            values, cols = sims.topk(min(top_k, n - 1), dim=1)
            i = rows.unsqueeze(1).expand_as(cols)
            keep = values >= min_score if min_score is not None else torch.ones_like(values, dtype=torch.bool)
            i, j, s = i[keep], cols[keep], values[keep]
        else:
            sims[sims.new_ones(sims.shape, dtype=torch.bool).tril(start)] = float("-inf")  # each pair once: j > i
            i, j = torch.nonzero(sims >= min_score, as_tuple=True)
            s, i = sims[i, j], rows[i]
        yield i.numpy().astype(np.int64), j.numpy().astype(np.int64), s.numpy().astype(np.float32)


def _collect(blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int, max_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks' pairs, each once, best first, at most max_pairs: never more than about twice
    that many held at once, whatever the corpus size."""
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    held = 0
    for block in blocks:
        found.append(block)
        held += len(block[2])
        if held > 2 * max_pairs:  # bounded memory: keep only the best max_pairs so far
            found = [_keep_best(*_unique(*(np.concatenate(part) for part in zip(*found)), n), max_pairs)]
            held = len(found[0][2])
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    i, j, s = (np.concatenate(part) for part in zip(*found))
    i, j, s = _unique(i, j, s, n)
    return i[:max_pairs], j[:max_pairs], s[:max_pairs]
