"""serve.py: a real server on a loopback port, called over HTTP (httpx, the OpenAI client):
scores equal the API's, batching across clients changes no answer, every bad request is a 4xx
naming the problem, SIGTERM drains, and a soak of mixed requests leaves it answering."""
import base64
import functools
import os
import platform
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from queue import Queue
from types import SimpleNamespace
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

import sts
from sts.core.inputs import PairInputs
from sts.errors import STSError
from sts.serving import server as server_module
from sts.serving.server import Backlog, ScoreRequest, ServingLoop, _isolated

from conftest import ROOT
from helpers import foreground

# its tests share a module fixture that is expensive to build: one test process runs them all
pytestmark = pytest.mark.xdist_group("server")

S1 = ["the cat ate the mouse", "the dog chased the cat", "the king ate the cake", "A man plays a guitar."]
S2 = ["the mouse was eaten by the cat", "the alligator is fat", "the cake was ingested by the king", "A man plays a guitar."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """serve.py in a child process; `url` once /health answers. fp32, so that scores can be
    compared with the API's to 1e-6 on any host (precision=auto would be bf16 on AMX CPUs)."""

    def __init__(self, ckpt: Path | None, tmp_path: Path, *overrides: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        args = [sys.executable, str(ROOT / "serve.py"), f"ckpt={'null' if ckpt is None else ckpt}", f"port={self.port}", "threads=1", "precision=fp32", *overrides]
        self.log = (tmp_path / f"serve-{self.port}.log").open("w")
        self.proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=foreground)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).text == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not come up: " + Path(self.log.name).read_text()[-3000:])

    def post(self, path: str, **kwargs) -> httpx.Response:
        """One request on a pooled keep-alive connection, as real clients (OpenAI's, httpx's) send
        them; a new connection per request costs the 2-core test host more than the scoring."""
        return self.client.post(path, **kwargs)

    @functools.cached_property
    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.client.close()
        self.log.close()
        return code


@pytest.fixture(scope="module")
def bi_server(tiny_model_file: Path, tmp_path_factory: pytest.TempPathFactory):
    server = Server(tiny_model_file, tmp_path_factory.mktemp("serve-bi"), "max_pairs=100", "max_chars=200", "max_payload_bytes=65536", "max_tokens=2000", "batch_timeout=0.05")
    yield server
    server.stop()


def score(server: Server, pairs: list[list[str]], **extra) -> list[dict]:
    response = server.post("/v1/score", json={"pairs": pairs, **extra})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_this_module_runs_in_one_test_process(request: pytest.FixtureRequest) -> None:
    """xdist's loadgroup keeps the module (and its server fixture) in one test process: it tags the
    test's id with the group, which pytest 9.2 ignored (the test extra pins pytest below it)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and request.config.getvalue("loadgroup"):
        assert request.node.nodeid.endswith("@server")


def test_score_equals_the_python_api_in_request_order(bi_server: Server, tiny_model_file: Path) -> None:
    model = sts.load(tiny_model_file, precision="fp32")
    results = score(bi_server, [list(p) for p in zip(S1, S2)])
    expected = model.score(S1, S2)
    np.testing.assert_allclose([r["score"] for r in results], expected, atol=1e-6)
    assert [r["lbl"] for r in results] == (expected >= model.threshold).astype(int).tolist()
    body = bi_server.post("/v1/score", json={"pairs": [[S1[0], S2[0]]], "threshold": 0.0}).json()
    assert body["threshold"] == 0.0 and body["results"][0]["lbl"] == 1 and body["model"] == str(tiny_model_file)


def test_concurrent_clients_batched_get_their_own_answers(bi_server: Server, tiny_model_file: Path) -> None:
    model = sts.load(tiny_model_file, precision="fp32")
    requests = [[[S1[i % 4], S2[(i * 3) % 4]]] * (1 + i % 3) for i in range(48)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda pairs: score(bi_server, pairs), requests))
    for pairs, results in zip(requests, answers):
        assert len(results) == len(pairs)
        np.testing.assert_allclose([r["score"] for r in results], model.score([p[0] for p in pairs], [p[1] for p in pairs]), atol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b'{"pairs": [["a", "b"]', 422, "JSON decode error"),
        (b'[1, 2]', 422, "valid dictionary"),
        (b'{"pairs": "a b"}', 422, "pairs"),
        (b'{"pairs": [["a", 3]]}', 422, "string"),
        (b'{"pairs": [["a", "b", "c"]]}', 422, "at most 2"),
        (b'{"pairs": []}', 422, "at least 1"),
        (b'{"pairs": [["a", "   "]]}', 422, "pairs[0][1] is empty or whitespace"),
        (b'{"pairs": [["a", "b"]], "treshold": 0.5}', 422, "treshold"),
        (b'{"pairs": [["a", "b"]], "threshold": 2}', 422, "less than or equal to 1"),
        (b'{"pairs": [["a", "' + b"x" * 201 + b'"]]}', 422, "at most 200 (max_chars)"),
        (b'{"pairs": ' + str([["a", "b"]] * 101).replace("'", '"').encode() + b"}", 422, "at most 100 per request (max_pairs)"),
        (b'{"pairs": [["a", "' + b"y" * 70000 + b'"]]}', 413, "too large"),
    ],
)
def test_bad_requests_are_4xx_naming_the_problem(bi_server: Server, body: bytes, status: int, names: str) -> None:
    response = bi_server.post("/v1/score", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert names in response.text
    assert score(bi_server, [[S1[0], S2[0]]])  # and the server still answers


def test_one_clients_bad_request_fails_only_its_own(bi_server: Server) -> None:
    """Issue 37: a lone surrogate or an unsupported `dimensions` among concurrent good requests."""
    raw = {"headers": {"content-type": "application/json"}}
    bad = [("/v1/score", {"content": b'{"pairs": [["a", "\\ud800"]]}', **raw}, "pairs[0][1] is not valid UTF-8"),
           ("/v1/embeddings", {"content": b'{"input": ["a", "b\\udfff"]}', **raw}, "input[1] is not valid UTF-8"),
           ("/v1/embeddings", {"json": {"input": "a", "dimensions": 7}}, "dimensions=7")]
    good = [("/v1/score", {"json": {"pairs": [[S1[i % 4], S2[i % 4]]]}}, None) for i in range(12)] + [("/v1/embeddings", {"json": {"input": S1}}, None)] * 6
    calls = [call for k in range(4) for call in (bad[k % 3], *good[k * 4 : k * 4 + 4])]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda c: bi_server.post(c[0], **c[1]), calls))
    for (_, _, names), response in zip(calls, responses):
        assert response.status_code == (200 if names is None else 422), response.text
        assert names is None or names in response.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/v1/score", b'{"pairs": [["a", "b"]], "threshold": ' + v + b"}", "threshold") for v in (b"NaN", b"Infinity", b"-Infinity", b"1e309")]
    + [("/v1/embeddings", b'{"input": "a", "dimensions": ' + v + b"}", "dimensions") for v in (b"NaN", b"Infinity", b"1e309")],
)
def test_non_finite_numbers_are_422_naming_the_field(bi_server: Server, path: str, body: bytes, field: str) -> None:
    response = bi_server.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert any(field in e["loc"] for e in response.json()["detail"])


def test_tokens_per_request_are_limited(bi_server: Server) -> None:
    """max_tokens bounds a request's work: 60 pairs within max_pairs and max_chars, but 60 x 2 x ~32 tokens."""
    response = bi_server.post("/v1/score", json={"pairs": [["word " * 30, "word " * 30]] * 60})
    assert response.status_code == 422 and "at most 2000 per request (max_tokens)" in response.text, response.text
    assert bi_server.post("/v1/embeddings", json={"input": ["word " * 30] * 80}).status_code == 422


def test_a_cross_encoder_reading_both_orders_counts_each_pair_twice(tiny_cross_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_tokens bounds the tokens the model reads: with model.both_orders a cross-encoder reads
    every pair reversed too, so a request that fits read once is refused."""
    from pydantic import ValidationError

    from sts.api import describe

    inputs = describe(tiny_cross_model_file).inputs
    pairs = [["a cat sits on the mat", "two dogs play in the park"]] * 4
    once = inputs.work([a for a, _ in pairs], [b for _, b in pairs])
    assert inputs.work([a for a, _ in pairs], [b for _, b in pairs], both_orders=True) == 2 * once
    monkeypatch.setattr(server_module.Limits, "inputs", inputs)
    monkeypatch.setattr(server_module.Limits, "max_tokens", once)
    ScoreRequest(pairs=pairs)
    monkeypatch.setattr(server_module.Limits, "both_orders", True)
    with pytest.raises(ValidationError, match=f"have {2 * once} tokens; at most {once} per request"):
        ScoreRequest(pairs=pairs)


def test_a_failing_request_is_isolated_from_its_batch() -> None:
    def run(batch: list[str]) -> list[str]:
        if "bad" in batch:
            raise STSError("the tokenizer failed (PanicException: boom)")
        return [s.upper() for s in batch]

    outputs = _isolated(["a", "bad", "c"], run)
    assert outputs[0] == "A" and outputs[2] == "C"
    assert outputs[1].status_code == 500 and outputs[1].detail == "the tokenizer failed (PanicException: boom)"


def test_tokenizer_panic_is_an_sts_error_in_one_line() -> None:
    class PanicException(BaseException):  # what pyo3 raises for a Rust panic: not an Exception
        pass

    def tokenizer(*args, **kwargs):
        raise PanicException("called `Result::unwrap()` on an `Err` value\nnote: run with RUST_BACKTRACE=1")

    with pytest.raises(STSError, match=r"^the tokenizer failed \(PanicException: called `Result::unwrap\(\)` on an `Err` value\)$"):
        PairInputs(tokenizer, 16, joined=False).pairs(["a"], ["b"])


def _inference_workers(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


def test_one_worker_holds_the_model_for_every_endpoint(bi_server: Server, tiny_model_file: Path) -> None:
    """A bi-encoder serves /v1/score and /v1/embeddings from one inference worker (one model in
    memory), and a batch mixing the two answers each request as if it came alone."""
    assert len(_inference_workers(bi_server.proc.pid)) == 1
    model = sts.load(tiny_model_file, precision="fp32")
    expected_scores, expected_embeddings = model.score(S1, S2), model.embed(S1)
    expected_embeddings /= np.linalg.norm(expected_embeddings, axis=1, keepdims=True)

    def one(i: int) -> bool:
        k = i % 4
        if i % 2:
            return abs(score(bi_server, [[S1[k], S2[k]]])[0]["score"] - expected_scores[k]) < 1e-6
        body = bi_server.post("/v1/embeddings", json={"input": S1[k]}).json()
        return np.allclose(body["data"][0]["embedding"], expected_embeddings[k], atol=1e-5)

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(one, range(64)))


def _maps_torch(process: psutil.Process) -> bool:
    return any("libtorch" in Path(m.path).name for m in process.memory_maps(grouped=True))


def test_only_the_inference_worker_loads_torch(bi_server: Server) -> None:
    """The serving process, LitServe's manager and the HTTP processes it forks count tokens with the
    tokenizer alone: torch (hundreds of MiB in each) is mapped by the inference worker only."""
    server = psutil.Process(bi_server.proc.pid)
    workers = _inference_workers(bi_server.proc.pid)
    front_end = [server, *(p for p in server.children(recursive=True) if p not in workers and "resource_tracker" not in " ".join(p.cmdline()))]
    assert len(front_end) >= 3  # the serving process, LitServe's manager, one HTTP process
    assert [p.pid for p in front_end if _maps_torch(p)] == []
    assert all(_maps_torch(w) for w in workers)


def test_a_bad_model_fails_in_one_line_before_serving(tmp_path: Path) -> None:
    """The model is checked in a child process (`describe_apart`), whose error is still one line."""
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    out = subprocess.run([sys.executable, str(ROOT / "serve.py"), f"ckpt={bad}", f"port={free_port()}"], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {bad}"), out.stderr[-2000:]


def test_overload_is_refused_at_once_with_429(tiny_model_file: Path, tmp_path: Path) -> None:
    """Beyond max_queued items in flight a request gets 429 with Retry-After at once; every
    request gets its answer or that refusal, none a 5xx."""
    server = Server(tiny_model_file, tmp_path, "max_queued=1", "max_pairs=400")
    try:
        pairs = [[f"sentence {i} about cats and dogs", f"another sentence {i}"] for i in range(400)]
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: server.post("/v1/score", json={"pairs": pairs}), range(32)))
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 429}, codes
        refused = next(r for r in responses if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1 and "max_queued" in refused.json()["detail"]
        assert all(len(r.json()["results"]) == 400 for r in responses if r.status_code == 200)
    finally:
        assert server.stop() == 0


def test_backlog_bound_follows_the_measured_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(server_module.time, "monotonic", lambda: clock[0])
    backlog = Backlog(None, timeout=10)
    assert backlog.admit(5000)  # nothing pending: always admitted
    assert not backlog.admit(1) and backlog.bound == Backlog.START and backlog.full
    clock[0] += 2.0  # 5000 items answered in 2 busy seconds: 2500/s, bound 2500 x 10/2
    backlog.done(5000)
    assert backlog.rate == pytest.approx(2500) and backlog.bound == pytest.approx(12500) and backlog.pending == 0 and not backlog.full
    assert backlog.admit(12000) and backlog.admit(400) and not backlog.full
    assert not backlog.admit(200)
    refused = backlog.refusal()  # 12400 pending at 2500/s: retry in 5 s
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
    fixed = Backlog(10, timeout=10)
    assert fixed.admit(8) and not fixed.admit(3) and fixed.admit(2) and fixed.full


class Sent:
    """A transport that keeps what a loop sends (LitServe sends each taken request's START)."""

    def __init__(self) -> None:
        self.messages: list[tuple] = []

    def send(self, item: tuple, consumer_id: int) -> None:
        self.messages.append(item)


def queued(pairs: int, company: int, uid: str) -> tuple:
    request = ScoreRequest(pairs=[["a b", "c d"]] * pairs)
    request._company = company
    request = pickle.loads(pickle.dumps(request))  # as the queue to the worker carries it
    assert request._company == company
    return (0, uid, time.monotonic(), request)


@pytest.mark.parametrize(
    "first, later, batch",
    [
        ((1, 0), None, ["lone"]),  # nobody else was in flight: no wait for company
        ((64, 0), None, ["big"]),  # a lone client's big request: no wait either
        ((1, 3), (1, 0), ["first", "later"]),  # admitted alongside others: waits for them
    ],
)
def test_a_batch_waits_for_company_only_when_some_is_coming(first: tuple, later: tuple | None, batch: list[str]) -> None:
    loop, requests, transport = ServingLoop(), Queue(), Sent()
    loop._restart_workers = True
    api = SimpleNamespace(max_batch_size=64, batch_timeout=2.0, request_timeout=30)
    uid = batch[0]
    requests.put(queued(*first, uid))
    if later is not None:
        threading.Timer(0.2, lambda: requests.put(queued(*later, "later"))).start()
    start = time.monotonic()
    taken, late = loop.get_batch_requests(api, requests, transport)
    waited = time.monotonic() - start
    assert [t[1] for t in taken] == batch and late == []
    assert len(transport.messages) == len(batch)  # each taken request's START reached its HTTP process
    # a lone request closes its batch at once; one with company when the batch timeout (2 s) runs out
    assert waited < 0.15 if later is None else 1.9 < waited < 3.0


def test_killed_worker_answers_5xx_within_timeout_and_is_restarted(tiny_model_file: Path, tmp_path: Path) -> None:
    server = Server(tiny_model_file, tmp_path, "timeout=3", "max_batch_size=1")
    try:
        pairs = [[f"sentence number {i} about cats", f"another sentence {i} about dogs"] for i in range(3000)]
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(server.post, "/v1/score", json={"pairs": pairs})
            time.sleep(0.5)
            killed = _inference_workers(server.proc.pid)
            for worker in killed:
                worker.kill()
            start = time.monotonic()
            response = pending.result()
        assert response.status_code >= 500 and time.monotonic() - start < 5, response.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (httpx.get(f"{server.url}/health").text != "ok" or len(_inference_workers(server.proc.pid)) < len(killed)):
            time.sleep(0.5)
        assert server.proc.poll() is None and score(server, [[S1[0], S2[0]]])
        said = Path(server.log.name).read_text()
        assert "WARNING" in said and "is dead. Restarting it" in said, said[-2000:]  # logged at the default log level
    finally:
        assert server.stop() == 0


def test_embeddings_openai_format_and_client(bi_server: Server, tiny_model_file: Path) -> None:
    from openai import OpenAI

    model = sts.load(tiny_model_file, precision="fp32")
    expected = model.embed(S1)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    body = bi_server.post("/v1/embeddings", json={"input": S1, "model": "sts"}).json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1, 2, 3] and body["usage"]["prompt_tokens"] > 0
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], expected, atol=1e-5)
    packed = bi_server.post("/v1/embeddings", json={"input": S1[0], "encoding_format": "base64"}).json()["data"][0]["embedding"]
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(packed), dtype="<f4"), expected[0], atol=1e-5)
    client = OpenAI(base_url=f"{bi_server.url}/v1", api_key="unused")
    result = client.embeddings.create(input=S1, model="sts")  # the client asks for base64 and decodes it
    np.testing.assert_allclose([d.embedding for d in result.data], expected, atol=1e-5)
    assert bi_server.post("/v1/embeddings", json={"input": []}).status_code == 422
    assert "dimensions=7" in bi_server.post("/v1/embeddings", json={"input": "a", "dimensions": 7}).text


def test_health_and_info(bi_server: Server) -> None:
    assert httpx.get(f"{bi_server.url}/health").text == "ok"
    info = httpx.get(f"{bi_server.url}/info").json()["model"]
    assert info["architecture"] == "BiEncoder" and info["version"] == sts.__version__ and "val/spearman" in info["metrics"] and 0 <= info["threshold"] <= 1
    assert info["precision"] == "fp32" and info["long_inputs"] == "truncate"  # how the worker scores, as set
    assert info["pad_to_multiple_of"] == 8  # serve.yaml's default


def test_rerank_cohere_client_and_tei_schemas_score_as_the_api(bi_server: Server, tiny_model_file: Path) -> None:
    """/v1/rerank (Cohere's client, unchanged), TEI's /rerank, /similarity and /predict: each
    answers with Model.score's numbers in its own schema."""
    import cohere

    model = sts.load(tiny_model_file, precision="fp32")
    query, documents = S1[0], [S2[0], S2[1], S1[0], S2[2]]
    expected = model.score([query] * 4, documents)
    order = np.argsort(-expected, kind="stable").tolist()
    client = cohere.Client(base_url=bi_server.url, api_key="unused")
    ranked = client.rerank(query=query, documents=documents, top_n=3, return_documents=True, model="sts")
    assert [r.index for r in ranked.results] == order[:3] and ranked.results[0].document.text == documents[order[0]]
    np.testing.assert_allclose([r.relevance_score for r in ranked.results], expected[order[:3]], atol=1e-6)
    objects = bi_server.post("/v1/rerank", json={"query": query, "documents": [{"text": d} for d in documents]}).json()["results"]
    assert [r["index"] for r in objects] == order and "document" not in objects[0]

    tei = bi_server.post("/rerank", json={"query": query, "texts": documents, "return_text": True, "truncate": True}).json()
    assert [r["index"] for r in tei] == order and tei[0]["text"] == documents[order[0]]
    np.testing.assert_allclose([r["score"] for r in tei], expected[order], atol=1e-6)
    cut = bi_server.post("/rerank", json={"query": query, "texts": ["word " * 40], "truncate": True})  # TEI's truncate=true: cut, scored
    assert cut.status_code == 200 and cut.json()[0]["score"] == pytest.approx(float(model.score([query], ["word " * 40])[0]), abs=1e-6)
    raw = bi_server.post("/rerank", json={"query": query, "texts": documents, "raw_scores": True}).json()
    np.testing.assert_allclose(sorted(r["score"] for r in raw), sorted(model.score([query] * 4, documents, clip=False)), atol=1e-6)

    similar = bi_server.post("/similarity", json={"inputs": {"source_sentence": query, "sentences": documents}}).json()
    np.testing.assert_allclose(similar, expected, atol=1e-6)

    one = bi_server.post("/predict", json={"inputs": [S1[1], S2[1]]}).json()
    many = bi_server.post("/predict", json={"inputs": [list(p) for p in zip(S1, S2)]}).json()
    scores = model.score(S1, S2)
    assert one[0]["score"] == pytest.approx(float(scores[1]), abs=1e-6) and len(many) == 4
    assert [m[0]["label"] for m in many] == [str(int(s >= model.threshold)) for s in scores]


@pytest.mark.parametrize(
    ("path", "body", "names"),
    [
        ("/v1/rerank", {"query": "a", "documents": []}, "at least 1"),
        ("/v1/rerank", {"query": " ", "documents": ["a"]}, "query is empty"),
        ("/v1/rerank", {"query": "a", "documents": ["b", {"txt": "c"}]}, "txt"),
        ("/v1/rerank", {"query": "a", "documents": ["b"] * 101}, "max_pairs"),
        ("/v1/rerank", {"query": "a", "documents": ["b"], "top_n": 0}, "top_n"),
        ("/rerank", {"query": "a", "texts": ["b", ""]}, "texts[1] is empty"),
        ("/rerank", {"query": "a", "texts": ["b"], "truncation_direction": "left"}, "truncation_direction"),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"x": 1}}, "none are supported"),
        ("/similarity", {"inputs": {"source_sentence": "a"}}, "sentences"),
        ("/predict", {"inputs": "a"}, "inputs"),
        ("/predict", {"inputs": [["a", "b"], ["c"]]}, "inputs"),
        ("/predict", {"inputs": [["word " * 30, "word " * 30]] * 60}, "max_tokens"),
        ("/rerank", {"query": "a", "texts": ["b", "word " * 40], "truncate": False}, "texts[1] has 42 tokens; the model reads at most 32"),
        ("/rerank", {"query": "word " * 40, "texts": ["b"], "truncate": False}, "query has 42 tokens"),
        ("/predict", {"inputs": ["b", "word " * 40], "truncate": False}, "inputs has 42 tokens"),
        ("/predict", {"inputs": [["a", "b"], ["word " * 40, "c"]], "truncate": False}, "inputs[1] has 42 tokens"),
    ],
)
def test_rerank_and_tei_endpoints_validate_like_score(bi_server: Server, path: str, body: dict, names: str) -> None:
    response = bi_server.post(path, json=body)
    assert response.status_code == 422 and names in response.text, response.text


def _scrape(server: Server, headers: dict) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.url}/metrics", headers=headers).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_api_key_and_metrics_summed_over_two_front_ends(tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API key guards every endpoint but /health; /metrics (Prometheus, parsed with its own
    parser) counts every answer of both HTTP front-ends and the worker's pairs, whichever front-end
    is scraped."""
    from openai import OpenAI

    monkeypatch.setenv("STS_API_KEY", "s3cret-key-42")
    server = Server(tiny_model_file, tmp_path, "api_servers=2")
    key = {"Authorization": "Bearer s3cret-key-42"}
    try:
        assert httpx.get(f"{server.url}/health").text == "ok"
        for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret-key-42"}):
            refused = httpx.post(f"{server.url}/v1/score", json={"pairs": [["a", "b"]]}, headers=wrong)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer", refused.text
        assert httpx.get(f"{server.url}/info").status_code == 401 and httpx.get(f"{server.url}/metrics").status_code == 401
        for _ in range(20):  # a new connection each: both front-ends answer some
            assert httpx.post(f"{server.url}/v1/score", json={"pairs": [[S1[0], S2[0]], [S1[1], S2[1]]]}, headers=key).status_code == 200
        assert httpx.post(f"{server.url}/v1/score", json={"pairs": []}, headers=key).status_code == 422
        assert OpenAI(base_url=f"{server.url}/v1", api_key="s3cret-key-42").embeddings.create(input=["a cat"], model="sts").data
        for _ in range(4):  # every scrape, whichever front-end answers it, sums both
            found = _scrape(server, key)
            assert found[("sts_requests_total", (("endpoint", "/v1/score"), ("status", "200")))] == 20
            assert found[("sts_requests_total", (("endpoint", "/v1/score"), ("status", "401")))] == 3
            assert found[("sts_requests_total", (("endpoint", "/v1/score"), ("status", "422")))] == 1
            assert found[("sts_request_seconds_count", (("endpoint", "/v1/score"),))] == 24
            assert found[("sts_items_total", (("kind", "pairs"),))] == 40 and found[("sts_items_total", (("kind", "sentences"),))] == 1
            assert found[("sts_queued_items", ())] == 0 and found[("sts_model_load_seconds", ())] > 0
            assert 1 <= found[("sts_batch_requests_count", ())] <= 21
    finally:
        assert server.stop() == 0


def test_cross_encoder_serves_scores_and_refuses_embeddings(tiny_cross_model_file: Path, tmp_path: Path) -> None:
    server = Server(tiny_cross_model_file, tmp_path)
    try:
        results = score(server, [list(p) for p in zip(S1, S2)])
        np.testing.assert_allclose([r["score"] for r in results], sts.load(tiny_cross_model_file, precision="fp32").score(S1, S2), atol=1e-6)
        refused = server.post("/v1/embeddings", json={"input": "a"})
        assert refused.status_code == 400 and "CrossEncoder" in refused.json()["detail"]
        ranked = server.post("/v1/rerank", json={"query": S1[0], "documents": S2}).json()["results"]
        expected = sts.load(tiny_cross_model_file, precision="fp32").score([S1[0]] * 4, S2)
        assert [r["index"] for r in ranked] == np.argsort(-expected, kind="stable").tolist()
        # a cross-encoder reads query and text joined: truncate=false counts them together
        fits = server.post("/rerank", json={"query": "word " * 14, "texts": ["word " * 14], "truncate": False})
        refused = server.post("/rerank", json={"query": "word " * 14, "texts": ["word " * 14, "word " * 16], "truncate": False})
        assert fits.status_code == 200 and refused.status_code == 422, refused.text
        assert "texts[1] has 33 tokens with the query; the model reads at most 32" in refused.text, refused.text
    finally:
        assert server.stop(signal.SIGINT) == 0


def test_long_inputs_chunk_scores_embeds_and_limits_every_window(tiny_model_file: Path, tmp_path: Path) -> None:
    """With long_inputs=chunk the server scores and embeds a long text as the API does, and its
    limits count the windows: usage, max_tokens (a request truncation would admit is refused)
    and chunk_max_windows are 422s naming them."""
    server = Server(tiny_model_file, tmp_path, "long_inputs=chunk", "max_chars=5000", "max_tokens=3000", "chunk_max_windows=20")
    try:
        model = sts.load(tiny_model_file, precision="fp32", long_inputs="chunk")
        assert server.client.get("/info").json()["model"]["long_inputs"] == "chunk"
        long = " ".join(f"the cat number {i} ate the mouse." for i in range(40))
        windows = int(model.scorer.inputs.pieces([long]).tokens()[0])
        assert 10 * 32 < windows <= 20 * 32  # more than 10 windows of 32 tokens, within chunk_max_windows
        results = score(server, [[long, S2[0]], [S1[0], S2[0]]])
        np.testing.assert_allclose([r["score"] for r in results], model.score([long, S1[0]], [S2[0], S2[0]]), atol=1e-6)
        body = server.post("/v1/embeddings", json={"input": [long, S1[0]]}).json()
        expected = model.embed([long, S1[0]])
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose([d["embedding"] for d in body["data"]], expected, atol=1e-5)
        assert body["usage"]["prompt_tokens"] == windows + len(model.module.tokenizer(S1[0])["input_ids"])
        refused = server.post("/v1/embeddings", json={"input": [long] * 8})  # 8 x 32 tokens truncated, 8 x windows read
        assert refused.status_code == 422 and "at most 3000 per request (max_tokens)" in refused.text, refused.text
        longer = " ".join(f"the cat number {i} ate the mouse." for i in range(80))
        refused = server.post("/v1/score", json={"pairs": [[longer, "a"]]})
        assert refused.status_code == 422 and "at most chunk_max_windows=20 per text" in refused.text, refused.text
    finally:
        assert server.stop() == 0


def test_sigterm_drains_in_flight_requests_and_exits_0(tiny_model_file: Path, tmp_path: Path) -> None:
    server = Server(tiny_model_file, tmp_path, "max_batch_size=1", "max_queued=100000")
    pairs = [[f"sentence number {i} about cats", f"another sentence {i} about dogs"] for i in range(3000)]
    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(server.post, "/v1/score", json={"pairs": pairs}) for _ in range(4)]
        # one worker, batches of one: requests are answered one after another, so once the first
        # is, the others have long been received and wait or run
        while not any(p.done() for p in pending):
            time.sleep(0.01)
        in_flight = sum(not p.done() for p in pending)
        code = server.stop(signal.SIGTERM)
        responses = [p.result() for p in pending]
    assert in_flight >= 2 and code == 0
    assert all(r.status_code == 200 and len(r.json()["results"]) == 3000 for r in responses), [r.status_code for r in responses]


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration):
            continue
    return total / 1024


@pytest.mark.slow
def test_soak_mixed_good_and_bad_requests(bi_server: Server, tiny_model_file: Path) -> None:
    model = sts.load(tiny_model_file, precision="fp32")
    expected = dict(zip(zip(S1, S2), model.score(S1, S2)))
    good = [[S1[i % 4], S2[i % 4]] for i in range(4)]
    bad = [b'{"pairs": [["a", ""]]}', b"{", b'{"pairs": [["a", 1]]}', b'{"pairs": [["a", "b"]], "x": 0}']

    def one(i: int) -> bool:
        if i % 3 == 0:
            response = bi_server.post("/v1/score", content=bad[i % 4], headers={"content-type": "application/json"})
            return response.status_code == 422
        pairs = good[: 1 + i % 4]
        results = score(bi_server, pairs)
        return all(abs(r["score"] - expected[tuple(p)]) < 1e-6 for r, p in zip(results, pairs))

    warm = [one(i) for i in range(200)]
    before = _tree_rss_mib(bi_server.proc.pid)
    with ThreadPoolExecutor(32) as pool:
        outcomes = list(pool.map(one, range(3000)))
    after = _tree_rss_mib(bi_server.proc.pid)
    assert all(warm) and all(outcomes), outcomes.count(False)
    assert after < before * 1.2 + 50, (before, after)
    assert score(bi_server, good)


def test_freed_memory_policy_is_applied_only_when_asked() -> None:
    """In a child process: applied here, the policy would stay in force for every later test."""
    code = "from sts.serving.server import _return_freed_memory as policy; print(policy(None), policy(131072))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True, timeout=120)
    glibc = platform.libc_ver()[0] == "glibc"
    assert out.stdout.split() == ["False", str(glibc)]
