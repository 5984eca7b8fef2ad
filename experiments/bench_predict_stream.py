"""predict.py on a large CSV: streaming memory, order and speed.

    python experiments/bench_predict_stream.py [--rows 1000000] [--pool 400] [--ckpt MODEL]

Builds a CSV of --rows pairs drawn from --pool STS-B test sentences (one sentence compared with
many, as in real tables), runs `predict.py` on it as a user would, and prints the child's peak
resident memory, rows/s, and whether the output has every row in input order. Without --ckpt the
untrained bundled bi-encoder is saved as a checkpoint first.
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sts.core import provenance  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra predict.py overrides, e.g. precision=bf16")
    args = parser.parse_args()
    from sts.data.readers import read_pairs
    from sts.resources import resource as res

    test = read_pairs(res("stsb/sts-test.csv"), "stsb")
    sentences = list(dict.fromkeys(test.sentence1 + test.sentence2))
    rng = np.random.default_rng(0)
    pool = [sentences[i] for i in rng.choice(len(sentences), args.pool, replace=False)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        ckpt = args.ckpt
        if ckpt is None:
            from sts.io import checkpoint
            from sts.config import compose
            from sts.training.fit import build_model

            ckpt = str(checkpoint.save(build_model(compose("train", [], tmp_path)), tmp_path / "model.pt"))
        pairs = tmp_path / "pairs.csv"
        with open(pairs, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "line1", "line2"])
            a, b = rng.integers(0, args.pool, args.rows), rng.integers(0, args.pool, args.rows)
            writer.writerows((i, pool[x], pool[y]) for i, (x, y) in enumerate(zip(a, b)))
        out = tmp_path / "pairs.pred.csv"
        cmd = [sys.executable, str(ROOT / "predict.py"), f"ckpt={ckpt}", f"input={pairs}", f"output={out}", "preview_rows=0", *args.overrides]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with open(out, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            in_order, count = True, 0
            for i, row in enumerate(reader):
                in_order &= row[0] == str(i)
                count += 1
    result = {"rows": args.rows, "pool": args.pool, "seconds": round(seconds, 1), "rows_per_s": round(args.rows / seconds, 1),
              "peak_rss_mb": round(peak_mb), "all_rows_in_order": in_order and count == args.rows, "output_columns": header}
    print("python experiments/bench_predict_stream.py " + " ".join(sys.argv[1:]))
    print(f"hardware: {provenance.hardware()}; git {provenance.git_commit()}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
