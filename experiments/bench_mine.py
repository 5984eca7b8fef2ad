"""Paraphrase mining: ours (`Model.mine`) vs sentence-transformers' `util.paraphrase_mining`, and
exact vs ANN (FAISS) mining on large corpora.

    python experiments/bench_mine.py [--n 10000] [--top-k 10] [--repeats 3] [--rss 100000]
    python experiments/bench_mine.py --ann 100000 [--top-k 10] [--repeats 3] [--cache DIR] [--embeddings FILE] [--sample 2000] [--no-exact]
        [--ef-search 128 256] [--no-ivf]

Same model (the bundled all-MiniLM-L6-v2), corpus and threads; each side with its own defaults
(ours: batch 64, 128 tokens; sentence-transformers: batch 32, the model's 256 tokens). The corpus
is the distinct sentences of STS-B, SICK and MSRP (bundled, 26,724), first --n of them, then
spliced ones (the first half of one bundled sentence's words and the second half of another's,
pairs drawn by a seeded generator). Each side runs once to warm up and --repeats timed times, end
to end (embedding + search); medians are reported, and the overlap of the two pair sets. --rss N
runs `mine.py top_k=10` on N sentences in a child process and reports its peak RSS.

--ann N: embeds N sentences once with `embed.py` (timed: the embedding time, reported apart;
cached in --cache; --embeddings FILE takes them made elsewhere, untimed), then runs `mine.py embeddings=... top_k=K` with index=exact, index=faiss (HNSW
at the shipped defaults; with --ef-search also at those ann.ef_search values) and index=faiss
ann.structure=ivf (unless --no-ivf), each --repeats times in a fresh child
process: wall time (model load and reading the corpus included, embedding not), peak RSS of that
process, and recall of the ANN pairs against exact's (pair-level: the share of exact's pairs the
ANN run also wrote). With --no-exact (for 1M, where exact would take hours) recall is measured on
--sample query sentences: their exact top-K partners by brute force over all embeddings, those
scoring at least the ANN output's lowest score (mine.py keeps the best max_pairs pairs: a partner
below that cut is not expected), against the ANN run's pairs. The load average before and after each run is printed: timings taken while
other processes ran are not comparable. The last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sts.core import provenance  # noqa: E402
from sts.data.embeddings import EmbeddingsFile  # noqa: E402
from sts.data.terminal import format_table  # noqa: E402


def corpus(n: int) -> list[str]:
    """n distinct sentences: the bundled data sets' own, then splices of two of them."""
    from sts.data.readers import read_pairs
    from sts.resources import resource as res

    sources = [("stsb/sts-train.csv", "stsb"), ("stsb/sts-dev.csv", "stsb"), ("stsb/sts-test.csv", "stsb"),
               ("sick/SICK_train.txt", "sick"), ("sick/SICK_trial.txt", "sick"), ("msrp/msr_paraphrase_train.txt", "msrp")]
    sentences: list[str] = []
    for path, fmt in sources:
        pairs = read_pairs(res(path), fmt, [0, 5] if fmt == "stsb" else [1, 5] if fmt == "sick" else None)
        sentences.extend(pairs.sentence1 + pairs.sentence2)
    base = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    out = dict.fromkeys(base[:n])
    rng = random.Random(0)
    while len(out) < n:
        first, second = rng.choice(base).split(), rng.choice(base).split()
        out.setdefault(" ".join(first[: (len(first) + 1) // 2] + second[len(second) // 2 :]))
    return list(out)


def timed(fn, repeats: int) -> tuple[list[float], object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def peak_rss_of_mine(n: int, top_k: int) -> float:
    """Peak RSS (MiB) of `mine.py top_k=...` on n sentences, in a fresh child process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text("\n".join(corpus(n)) + "\n")
        cmd = [sys.executable, str(ROOT / "mine.py"), f"input={path}", f"top_k={top_k}", "progress=false", "preview_rows=0"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"mine.py on {n} sentences, top_k={top_k}: {seconds:.0f} s, peak RSS {rss:.0f} MiB", file=sys.stderr)
    return rss


def child(cmd: list[str]) -> tuple[float, float]:
    """Run cmd to completion: (wall seconds, that process's own peak RSS in MiB), failing loudly."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            log.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{log.read()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def pairs_of(path: Path) -> tuple[set[frozenset[str]], float]:
    """The pairs a mine.py output holds, and its lowest score (where max_pairs cut it)."""
    import csv

    pairs, lowest = set(), float("inf")
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            pairs.add(frozenset((row["sentence1"], row["sentence2"])))
            lowest = min(lowest, float(row["score"]))
    return pairs, lowest


def sampled_exact(embeddings_path: Path, sentences: list[str], top_k: int, sample: int) -> dict[frozenset[str], float]:
    """Exact top_k partners of `sample` evenly spread sentences, by brute force over all rows."""
    import numpy as np

    stored = EmbeddingsFile(embeddings_path, rows=len(sentences))
    rows = np.linspace(0, len(sentences) - 1, sample).astype(int)
    queries = np.concatenate([stored.read(r, r + 1) for r in rows])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    best_s = np.full((sample, top_k), -np.inf, np.float32)
    best_j = np.zeros((sample, top_k), np.int64)
    start = 0
    for chunk in stored.chunks(65536):
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        sims = queries @ chunk.T
        sims[rows[:, None] == np.arange(start, start + len(chunk))[None, :]] = -np.inf
        s = np.concatenate([best_s, sims], axis=1)
        j = np.concatenate([best_j, np.broadcast_to(np.arange(start, start + len(chunk)), sims.shape)], axis=1)
        top = np.argpartition(-s, top_k - 1, axis=1)[:, :top_k]
        best_s, best_j = np.take_along_axis(s, top, 1), np.take_along_axis(j, top, 1)
        start += len(chunk)
    return {frozenset((sentences[r], sentences[j])): float(s) for r, js, ss in zip(rows, best_j, best_s) for j, s in zip(js, ss)}


def ann_bench(args: argparse.Namespace) -> None:
    """exact vs FAISS mining of --ann sentences from precomputed embeddings (see the module doc)."""
    cache = Path(args.cache or tempfile.mkdtemp(prefix="bench-mine-"))
    cache.mkdir(parents=True, exist_ok=True)
    sentences = corpus(args.ann)
    text, emb, emb_record = cache / f"corpus-{args.ann}.txt", cache / f"corpus-{args.ann}.npy", cache / f"corpus-{args.ann}.embed.json"
    if not text.exists():
        text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    run = [sys.executable]
    lines = ["python experiments/bench_mine.py " + " ".join(sys.argv[1:]), f"hardware: {provenance.hardware()}",
             f"versions: {provenance.versions()}, faiss-cpu {version('faiss-cpu')}; git {provenance.git_commit()}",
             f"corpus: {args.ann:,} distinct sentences ({min(args.ann, 26724):,} bundled, the rest spliced); top_k={args.top_k}"]
    for line in lines:
        print(line, flush=True)
    if args.embeddings:  # made elsewhere (another host, a GPU): mining is timed, embedding is not
        stored = EmbeddingsFile(args.embeddings, rows=len(sentences))
        emb = Path(args.embeddings)
        print(f"embeddings: {emb} ({len(stored):,} x {stored.width}, given; embedding not timed here)", flush=True)
        embedding = None
    elif not emb_record.exists():
        load = os.getloadavg()[0]
        seconds, rss = child([*run, str(ROOT / "embed.py"), f"input={text}", f"out={emb}", "overwrite=true", "progress=false"])
        emb_record.write_text(json.dumps({"seconds": seconds, "rss_mib": rss, "load_before": load, "load_after": os.getloadavg()[0]}))
    if not args.embeddings:
        embedding = json.loads(emb_record.read_text())
        print(f"embedding (embed.py, once): {embedding['seconds']:.0f} s, peak RSS {embedding['rss_mib']:.0f} MiB, "
              f"load average {embedding['load_before']:.2f} before / {embedding['load_after']:.2f} after", flush=True)
    sides = ([("exact", ["index=exact"])] if not args.no_exact else []) + [("faiss HNSW", ["index=faiss"])]
    sides += [(f"faiss HNSW ef_search={ef}", ["index=faiss", f"ann.ef_search={ef}"]) for ef in args.ef_search]
    sides += [] if args.no_ivf else [("faiss IVF", ["index=faiss", "ann.structure=ivf"])]
    results: dict[str, dict] = {}
    for name, extra in sides:
        out = cache / f"pairs-{args.ann}-{name.replace(' ', '-').replace('=', '')}.csv"
        cmd = [*run, str(ROOT / "mine.py"), f"input={text}", f"embeddings={emb}", f"top_k={args.top_k}", f"output={out}", "overwrite=true",
               "preview_rows=0", "progress=false", *extra]
        times, rss, loads = [], [], []
        for _ in range(args.repeats):
            before = os.getloadavg()[0]
            seconds, peak = child(cmd)
            times.append(seconds)
            rss.append(peak)
            loads.append((before, os.getloadavg()[0]))
            print(f"{name}: {seconds:.1f} s, peak RSS {peak:.0f} MiB (load average {before:.2f} before, {loads[-1][1]:.2f} after)", flush=True)
        found, lowest = pairs_of(out)
        results[name] = {"runs_s": times, "median_s": statistics.median(times), "rss_mib": max(rss), "loads": loads, "pairs": found, "lowest_score": lowest}
    if args.no_exact:
        sampled = sampled_exact(emb, sentences, args.top_k, args.sample)
        how = (f"recall on the exact top-{args.top_k} partners of {args.sample} sampled sentences, of those the output should hold "
               f"(scoring at least its lowest score: mine.py keeps the best max_pairs pairs)")
    else:
        how = f"recall: share of exact's {len(results['exact']['pairs']):,} pairs found"
    rows = [["index", "median s", "runs (s)", "peak RSS MiB", "pairs", "recall"]]
    for name, r in results.items():
        truth = {p for p, score in sampled.items() if score >= r["lowest_score"]} if args.no_exact else results["exact"]["pairs"]
        r["recall"], r["truth_pairs"] = len(r["pairs"] & truth) / len(truth), len(truth)
        rows.append([name, f"{r['median_s']:.1f}", " ".join(f"{t:.1f}" for t in r["runs_s"]), f"{r['rss_mib']:.0f}", f"{len(r['pairs']):,}", f"{r['recall']:.4f}"])
    print(format_table(rows, title=f"mine.py top_k={args.top_k} on {args.ann:,} sentences from embed.py's embeddings (embedding not included); {how}"))
    print(json.dumps({"n": args.ann, "top_k": args.top_k, "embedding": embedding, "host": provenance.cpu() | {"threads": torch.get_num_threads()},
                      "mining": {k: {f: v for f, v in r.items() if f != "pairs"} | {"pairs": len(r["pairs"])} for k, r in results.items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rss", type=int, default=0, help="also measure mine.py's peak RSS on this many sentences")
    parser.add_argument("--ann", type=int, default=0, help="instead: exact vs FAISS mining of this many sentences")
    parser.add_argument("--cache", help="--ann: folder for the corpus, its embeddings and the pairs (kept between runs)")
    parser.add_argument("--sample", type=int, default=2000, help="--ann with --no-exact: query sentences recall is measured on")
    parser.add_argument("--no-exact", action="store_true", help="--ann: skip exact mining (hours at 1M); recall on --sample queries")
    parser.add_argument("--ef-search", type=int, nargs="*", default=[], help="--ann: also HNSW at these ann.ef_search values (recall against search time)")
    parser.add_argument("--no-ivf", action="store_true", help="--ann: skip the IVF side")
    parser.add_argument("--embeddings", help="--ann: the corpus's embeddings (.npy, same model, corpus order) made elsewhere; not re-embedded")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.ann:
        return ann_bench(args)

    import sentence_transformers
    from sentence_transformers import SentenceTransformer, util

    import sts

    sentences = corpus(args.n)
    ours_model = sts.load()
    peer_model = SentenceTransformer(ours_model.info["encoder"]["name"], device="cpu")
    ours_times, ours_pairs = timed(lambda: ours_model.mine(sentences, top_k=args.top_k), args.repeats)
    peer_times, peer_pairs = timed(lambda: util.paraphrase_mining(peer_model, sentences, top_k=args.top_k), args.repeats)
    ours_set = {frozenset(p[:2]) for p in ours_pairs}
    peer_set = {frozenset((sentences[i], sentences[j])) for _, i, j in peer_pairs}
    overlap = len(ours_set & peer_set) / max(len(ours_set | peer_set), 1)
    ours_s, peer_s = statistics.median(ours_times), statistics.median(peer_times)

    command = "python experiments/bench_mine.py " + " ".join(sys.argv[1:])
    print(command)
    print(f"hardware: {provenance.hardware()}")
    print(f"versions: {provenance.versions() | {'sentence_transformers': sentence_transformers.__version__}}; git {provenance.git_commit()}")
    rows = [["side", "median s", "runs (s)", "sentences/s", "pairs"],
            ["ours (Model.mine)", f"{ours_s:.2f}", " ".join(f"{t:.2f}" for t in ours_times), f"{args.n / ours_s:.0f}", str(len(ours_set))],
            ["peer (util.paraphrase_mining)", f"{peer_s:.2f}", " ".join(f"{t:.2f}" for t in peer_times), f"{args.n / peer_s:.0f}", str(len(peer_set))]]
    print(format_table(rows, title=f"paraphrase mining, {args.n} sentences, top_k={args.top_k}: ours {peer_s / ours_s:.2f}x the peer's speed; pair sets overlap {100 * overlap:.2f}% (Jaccard)"))
    result = {"n": args.n, "top_k": args.top_k, "ours_s": ours_s, "peer_s": peer_s, "ratio": peer_s / ours_s, "ours_runs": ours_times,
              "peer_runs": peer_times, "jaccard": overlap, "ours_pairs": len(ours_set), "peer_pairs": len(peer_set),
              "host": provenance.cpu() | {"threads": args.threads}}
    if args.rss:
        result["rss_n"], result["rss_mib"] = args.rss, peak_rss_of_mine(args.rss, args.top_k)
        print(f"mine.py top_k={args.top_k} on {args.rss} sentences: peak RSS {result['rss_mib']:.0f} MiB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
