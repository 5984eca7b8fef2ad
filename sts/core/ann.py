"""Approximate nearest neighbours (FAISS) for mining corpora too large to compare every pair.

Exact mining compares all n^2 pairs; an index finds each sentence's neighbours after visiting a
few thousand others, so time grows about as n log n. Two FAISS structures, both on unit vectors
with inner product (= cosine) and full float32 vectors (no quantisation, so a candidate's score is
its exact cosine): `hnsw` (a graph, nothing to train; the default) and `ivf` (k-means lists, trained
on an evenly spread sample, searched `nprobe` lists at a time). Vectors are added and queried one
chunk at a time from an `Embeddings` source, so memory holds the index and one chunk, never a
second copy of the corpus. FAISS is optional (`pip install 'sts[ann]'`) and imported only here,
only when an index is built.
"""
from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch

from sts.data.embeddings import Embeddings
from sts.errors import STSError

INDEXES = ("auto", "exact", "faiss")
STRUCTURES = ("hnsw", "ivf")
AUTO_FROM = 100_000  # index=auto: faiss from this many distinct sentences (experiments/bench/mine-*.txt)
CHUNK = 4096  # vectors added or queried per FAISS call
RANGE_K = 32  # neighbours first asked for per row when mining by threshold
RESULTS = 2**24  # at most this many results per FAISS call (12 bytes each)
INSTALL = "pip install 'sts[ann]' (faiss-cpu)"


@dataclass(frozen=True)
class ANN:
    """When an index is used and how it is built and searched (mine.py's `ann.*` options).

    `auto_from`: index=auto uses FAISS from this many distinct sentences. hnsw: `m` links per vector, `ef_construction` candidates while linking, `ef_search` while
    searching (higher: better recall, slower). ivf: `nlist` k-means lists (None: 4 sqrt(n)),
    `nprobe` of them searched per query."""

    auto_from: int = AUTO_FROM
    structure: str = "hnsw"
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 256
    nlist: int | None = None
    nprobe: int = 128

    def describe(self, n: int) -> str:
        if self.structure == "hnsw":
            return f"faiss HNSW (m={self.m}, ef_construction={self.ef_construction}, ef_search={self.ef_search})"
        return f"faiss IVF (nlist={lists(n, self.nlist)}, nprobe={self.nprobe})"


def available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def faiss_module() -> ModuleType:
    """faiss, its OpenMP threads set to torch's: where the cores are split between processes (the
    test suite, OMP_NUM_THREADS), FAISS would otherwise take all of them in each."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its search for per-CPU builds (one dispatching library in 1.15) is not news
    try:
        import faiss
    except ImportError:
        raise STSError(f"index=faiss needs FAISS: {INSTALL}") from None
    faiss.omp_set_num_threads(torch.get_num_threads())
    return faiss


def choose(index: str, n: int, settings: ANN) -> tuple[str, str]:
    """(exact | faiss, one line saying which and why): `index=auto` takes faiss from
    `settings.auto_from` distinct sentences when FAISS is installed; below that exact search
    costs little more and finds every pair."""
    if index not in INDEXES:
        raise STSError(f"index={index!r}: choose one of {', '.join(INDEXES)}")
    ann = f"{settings.describe(n)} for {n:,} distinct sentences"
    if index == "faiss":
        return "faiss", f"index=faiss: {ann}"
    if index == "exact":
        return "exact", f"index=exact: every pair of {n:,} distinct sentences compared"
    if n < settings.auto_from:
        return "exact", f"index=auto: exact for {n:,} distinct sentences (faiss from ann.auto_from={settings.auto_from:,})"
    if not available():
        return "exact", f"index=auto: exact for {n:,} distinct sentences, as FAISS is not installed ({INSTALL}; time grows with n^2)"
    return "faiss", f"index=auto: {ann} (from ann.auto_from={settings.auto_from:,})"


def lists(n: int, nlist: int | None) -> int:
    """IVF lists: as asked, else about 4 sqrt(n), at most n/39 (k-means wants 39 points per list)."""
    return max(1, min(nlist or round(4 * math.sqrt(n)), n // 39 or 1, n))


def _unit(chunk: np.ndarray, faiss: ModuleType) -> np.ndarray:
    chunk = np.array(chunk, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(chunk)
    return chunk


def build(source: Embeddings, settings: ANN):
    """A FAISS index over `source`'s unit vectors, in source order (vector i is row i)."""
    if settings.structure not in STRUCTURES:
        raise STSError(f"ann.structure={settings.structure!r}: choose one of {', '.join(STRUCTURES)}")
    faiss = faiss_module()
    n, d = len(source), source.width
    if settings.structure == "hnsw":
        index = faiss.IndexHNSWFlat(d, settings.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
    else:
        nlist = lists(n, settings.nlist)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)  # faiss's wrapper keeps the quantizer alive
        index.cp.min_points_per_centroid = 1  # a small corpus's few points per list are fine; no warning printed on stdout
        stride = max(1, n // (64 * nlist))  # an evenly spread sample of about 64 vectors per list
        sample = np.concatenate([_unit(c[::stride], faiss) for c in source.chunks(CHUNK * stride)])
        index.train(sample)
        del sample
    for chunk in source.chunks(CHUNK):
        index.add(_unit(chunk, faiss))
    return index


def neighbours(index, source: Embeddings, settings: ANN, top_k: int | None, min_score: float | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(i, j, cosine) blocks of candidate pairs: each row's `top_k` nearest other rows (those
    reaching `min_score`, if given), or without top_k every other row the search finds at or
    above `min_score`. Both directions of a pair may appear.

    Without top_k this is a range search done as k-nearest searches with k growing fourfold for the
    rows whose k-th neighbour still reaches min_score (FAISS's own HNSW range search aborts the
    process when given more queries than its interrupt check period, in faiss-cpu 1.15.1), at most
    `RESULTS` results per FAISS call."""
    faiss = faiss_module()
    n = len(source)
    if settings.structure == "hnsw":
        index.hnsw.efSearch = settings.ef_search
    else:
        index.nprobe = min(settings.nprobe, index.nlist)
    start = 0
    for chunk in source.chunks(CHUNK):
        queries = _unit(chunk, faiss)
        rows = np.arange(start, start + len(queries), dtype=np.int64)
        start += len(queries)
        if top_k is not None:
            scores, cols = index.search(queries, min(top_k + 1, n))
            i = np.broadcast_to(rows[:, None], cols.shape)
            mine = (cols >= 0) & (cols != i)
            mine &= np.cumsum(mine, axis=1) <= top_k  # each row's first top_k others (results come best first)
            if min_score is not None:
                mine &= scores >= min_score
            yield i[mine], cols[mine].astype(np.int64), scores[mine].astype(np.float32)
            continue
        pending, k = np.arange(len(queries)), min(RANGE_K, n)
        while len(pending):
            more = []
            for part in np.array_split(pending, -(-len(pending) * k // RESULTS)):
                scores, cols = index.search(queries[part], k)
                i = np.broadcast_to(rows[part][:, None], cols.shape)
                mine = (cols >= 0) & (cols != i) & (scores >= min_score)
                yield i[mine], cols[mine].astype(np.int64), scores[mine].astype(np.float32)
                more.append(part[scores[:, -1] >= min_score])
            pending = np.concatenate(more) if k < n else pending[:0]
            k = min(4 * k, n)
