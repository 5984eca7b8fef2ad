"""GET /metrics: the server's Prometheus metrics, correct across all its processes.

The HTTP front-ends count requests by endpoint and status, their latency and the backlog of work
admitted; the inference workers count batches, pairs scored, sentences embedded and the time the
model took to load. Each process writes its values to files in PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode), which `serve` points at a fresh folder before any process
starts; a scrape of any front-end sums every process's files.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@contextmanager
def shared_folder() -> Iterator[str]:
    """A fresh folder for every process's metric files, in the environment the server's processes
    inherit (a folder left from an earlier run would add its counts to this one's), removed after."""
    folder = tempfile.mkdtemp(prefix="sts-metrics-")
    before = os.environ.get(ENV)
    os.environ[ENV] = folder
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
        shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def metrics() -> SimpleNamespace:
    """The metrics, created on first use in each process (after ENV is set: prometheus-client
    reads it when a metric is created)."""
    from prometheus_client import Counter, Gauge, Histogram

    return SimpleNamespace(
        requests=Counter("sts_requests", "HTTP requests answered, by endpoint and status code", ["endpoint", "status"]),
        latency=Histogram("sts_request_seconds", "Time from request to answer, by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS),
        queued=Gauge("sts_queued_items", "Pairs (or sentences to embed) admitted and not yet answered", multiprocess_mode="livesum"),
        batches=Histogram("sts_batch_requests", "Requests per batch an inference worker scores", buckets=BATCH_BUCKETS),
        items=Counter("sts_items", "Pairs scored and sentences embedded by the inference workers", ["kind"]),
        load=Gauge("sts_model_load_seconds", "Seconds an inference worker took to load the model", multiprocess_mode="max"),
    )


def exposition() -> tuple[bytes, str]:
    """The scrape: every process's metrics summed (multiprocess mode), or this process's alone
    when no shared folder is set (the server built outside `serve`, as in a test)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

    registry = REGISTRY
    if os.environ.get(ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def counting(paths: set[str]) -> Callable[..., Any]:
    """HTTP middleware: each answer counted by endpoint and status (refusals before the endpoint
    runs, such as 401, 413 and 422, included) and timed; paths outside `paths` count as "other"
    so that a scan of random URLs cannot grow the metrics without bound."""

    async def count(request: Any, call_next: Callable[[Any], Any]) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        endpoint = request.url.path if request.url.path in paths else "other"
        found = metrics()
        found.requests.labels(endpoint, str(response.status_code)).inc()
        found.latency.labels(endpoint).observe(time.perf_counter() - start)
        return response

    return count
