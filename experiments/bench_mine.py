"""Paraphrase mining: ours (`Model.mine`) vs sentence-transformers' `util.paraphrase_mining`.

    python experiments/bench_mine.py [--n 10000] [--top-k 10] [--repeats 3] [--rss 100000]

Same model (the bundled all-MiniLM-L6-v2), corpus and threads; each side with its own defaults
(ours: batch 64, 128 tokens; sentence-transformers: batch 32, the model's 256 tokens). The corpus
is the distinct sentences of STS-B, SICK and MSRP (bundled), first --n of them. Each side runs
once to warm up and --repeats timed times, end to end (embedding + search); medians are reported,
and the overlap of the two pair sets. --rss N runs `mine.py top_k=10` on N sentences in a child
process and reports its peak RSS (sentences beyond the bundled ones are numbered variants of
them). The last line is one JSON object with every figure and the host.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sts.core import provenance  # noqa: E402
from sts.data.terminal import format_table  # noqa: E402


def corpus(n: int) -> list[str]:
    """n distinct sentences: the bundled data sets' own, then numbered variants of them."""
    from sts.data.readers import read_pairs
    from sts.resources import resource as res

    sources = [("stsb/sts-train.csv", "stsb"), ("stsb/sts-dev.csv", "stsb"), ("stsb/sts-test.csv", "stsb"),
               ("sick/SICK_train.txt", "sick"), ("sick/SICK_trial.txt", "sick"), ("msrp/msr_paraphrase_train.txt", "msrp")]
    sentences: list[str] = []
    for path, fmt in sources:
        pairs = read_pairs(res(path), fmt, [0, 5] if fmt == "stsb" else [1, 5] if fmt == "sick" else None)
        sentences.extend(pairs.sentence1 + pairs.sentence2)
    base = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    out, k = base[:n], 1
    while len(out) < n:
        out.extend(f"{s} ({k})" for s in base[: n - len(out)])
        k += 1
    return out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rss", type=int, default=0, help="also measure mine.py's peak RSS on this many sentences")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

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
