"""An inference worker's memory policy: glibc's default against serve.yaml's malloc_mmap_threshold,
against smaller oneDNN kernel caches and against batches padded to a multiple of --pad tokens.

    python experiments/bench_worker_memory.py [--threshold 131072] [--kernel-cache 32 0] [--pad 8] [--repeats 3] [--calls 40]

What a serving worker does, without HTTP: the bundled model (precision=auto) scores a seeded
sequence of --calls requests of mixed sizes (1, 8, 64, 100 and 800 STS-B pairs, as single-pair,
64-pair and rerank clients send them), each policy in a fresh child process, the policies
alternating --repeats times. The oneDNN policies set ONEDNN_PRIMITIVE_CACHE_CAPACITY (how many
built kernels oneDNN keeps, one per operation and input shape; 1024 by default) in the child's
environment. The padding policies load the model with pad_to_multiple_of (serve.yaml's, scoring
default 1: the baseline pads each batch to its longest input). Reports each run's scoring time
(model load excluded) and peak RSS (VmHWM), the medians and their ratios to the baseline (glibc's
default, no padding); the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = (1, 8, 64, 100, 800)


def child(threshold: int | None, calls: int, pad: int = 1) -> dict:
    """One run in this process: (scoring seconds, peak RSS MiB)."""
    from sts.serving.server import _return_freed_memory

    applied = _return_freed_memory(threshold)
    import sts
    from bench_serve import stsb_pairs

    model = sts.load(pad_to_multiple_of=pad)
    pairs, rng = stsb_pairs(), random.Random(0)
    requests = [rng.sample(pairs, rng.choice(SIZES)) for _ in range(calls)]
    start = time.perf_counter()
    for request in requests:
        model.score([a for a, _ in request], [b for _, b in request])
    seconds = time.perf_counter() - start
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")) / 1024
    return {"seconds": seconds, "peak_rss_mib": peak, "applied": applied, "precision": model.info["precision"],
            "onednn_cache": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"), "pad_to_multiple_of": pad}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=int, default=131072)
    parser.add_argument("--kernel-cache", type=int, nargs="*", default=[32, 0], help="oneDNN primitive cache capacities to compare")
    parser.add_argument("--pad", type=int, nargs="*", default=[8], help="pad_to_multiple_of values to compare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-pad", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(None if args.child == "default" else int(args.child), args.calls, args.child_pad)))
        return
    from sts.core import provenance

    print("python experiments/bench_worker_memory.py " + " ".join(sys.argv[1:]))
    print(f"hardware: {provenance.hardware()}")
    print(f"git {provenance.git_commit()}; {args.calls} calls of sizes {SIZES} (seeded), each policy in a fresh process, alternating")
    policies = {"glibc default": ("default", {}, 1), f"mmap threshold {args.threshold}": (str(args.threshold), {}, 1)}
    policies |= {f"oneDNN cache {n}": ("default", {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(n)}, 1) for n in args.kernel_cache}
    policies |= {f"padded to {n} tokens": ("default", {}, n) for n in args.pad}
    runs: dict[str, list[dict]] = {name: [] for name in policies}
    for _ in range(args.repeats):
        for name, (flag, env, pad) in policies.items():
            out = subprocess.run([sys.executable, __file__, "--child", flag, "--calls", str(args.calls), "--child-pad", str(pad)], capture_output=True, text=True,
                                 check=True, cwd=ROOT / "experiments", env=os.environ | env)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{name}: {runs[name][-1]['seconds']:.2f} s, peak RSS {runs[name][-1]['peak_rss_mib']:.0f} MiB", flush=True)
    summary = {name: {"median_s": statistics.median(r["seconds"] for r in rs), "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rs), "runs": rs}
               for name, rs in runs.items()}
    base = summary["glibc default"]
    for name in runs:
        entry = summary[name]
        entry["time_ratio"], entry["rss_saved_mib"] = entry["median_s"] / base["median_s"], base["median_peak_rss_mib"] - entry["median_peak_rss_mib"]
        print(f"{name}: median {entry['median_s']:.2f} s ({entry['time_ratio']:.3f}x the default's), peak RSS {entry['median_peak_rss_mib']:.0f} MiB "
              f"({entry['rss_saved_mib']:.0f} MiB saved)")
    threshold = summary[f"mmap threshold {args.threshold}"]
    summary["time_ratio"], summary["rss_saved_mib"] = threshold["time_ratio"], threshold["rss_saved_mib"]  # the mmap threshold's, as serve.yaml cites them
    print(json.dumps(summary | {"host": provenance.cpu()}))


if __name__ == "__main__":
    main()
