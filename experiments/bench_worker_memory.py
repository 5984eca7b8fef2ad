"""An inference worker's allocator policy: glibc's default against serve.yaml's malloc_mmap_threshold.

    python experiments/bench_worker_memory.py [--threshold 131072] [--repeats 3] [--calls 40]

What a serving worker does, without HTTP: the bundled model (precision=auto) scores a seeded
sequence of --calls requests of mixed sizes (1, 8, 64, 100 and 800 STS-B pairs, as single-pair,
64-pair and rerank clients send them), each policy in a fresh child process, the two alternating
--repeats times. Reports each run's scoring time (model load excluded) and peak RSS (VmHWM), the
medians and their ratios; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = (1, 8, 64, 100, 800)


def child(threshold: int | None, calls: int) -> dict:
    """One run in this process: (scoring seconds, peak RSS MiB)."""
    from sts.serving.server import _return_freed_memory

    applied = _return_freed_memory(threshold)
    import sts
    from bench_serve import stsb_pairs

    model = sts.load()
    pairs, rng = stsb_pairs(), random.Random(0)
    requests = [rng.sample(pairs, rng.choice(SIZES)) for _ in range(calls)]
    start = time.perf_counter()
    for request in requests:
        model.score([a for a, _ in request], [b for _, b in request])
    seconds = time.perf_counter() - start
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")) / 1024
    return {"seconds": seconds, "peak_rss_mib": peak, "applied": applied, "precision": model.info["precision"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=int, default=131072)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(None if args.child == "default" else int(args.child), args.calls)))
        return
    from sts.core import provenance

    print("python experiments/bench_worker_memory.py " + " ".join(sys.argv[1:]))
    print(f"hardware: {provenance.hardware()}")
    print(f"git {provenance.git_commit()}; {args.calls} calls of sizes {SIZES} (seeded), each policy in a fresh process, alternating")
    runs: dict[str, list[dict]] = {"glibc default": [], f"mmap threshold {args.threshold}": []}
    for _ in range(args.repeats):
        for name, flag in zip(runs, ("default", str(args.threshold))):
            out = subprocess.run([sys.executable, __file__, "--child", flag, "--calls", str(args.calls)], capture_output=True, text=True, check=True, cwd=ROOT / "experiments")
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{name}: {runs[name][-1]['seconds']:.2f} s, peak RSS {runs[name][-1]['peak_rss_mib']:.0f} MiB", flush=True)
    summary = {name: {"median_s": statistics.median(r["seconds"] for r in rs), "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rs), "runs": rs}
               for name, rs in runs.items()}
    base, ours = summary.values()
    summary["time_ratio"] = ours["median_s"] / base["median_s"]
    summary["rss_saved_mib"] = base["median_peak_rss_mib"] - ours["median_peak_rss_mib"]
    for name in runs:
        print(f"{name}: median {summary[name]['median_s']:.2f} s, peak RSS {summary[name]['median_peak_rss_mib']:.0f} MiB")
    print(f"time with the threshold / without: {summary['time_ratio']:.3f}; peak RSS saved {summary['rss_saved_mib']:.0f} MiB")
    print(json.dumps(summary | {"host": provenance.cpu()}))


if __name__ == "__main__":
    main()
