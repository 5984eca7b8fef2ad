"""predict engine=ray on a local two-node Ray cluster against one-process predict, same input.

    python experiments/bench_ray_predict.py [--rows 4000] [--files 4] [--actors 2]

Writes --files CSVs of --rows pairs in all (STS-B test pairs, repeated), labels them with the
bundled model in one process (predict.py, engine=local) and on a two-node ray.cluster_utils.Cluster
on this machine (--actors actors of 1 CPU each), both with precision=fp32 and backend=torch, and
prints rows/s of each, the cluster's start-up apart, and the largest score difference. On one
small machine this measures Ray's overhead, not a speed-up: both runs share the same cores.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STS_BACKEND", "torch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args()

    import ray
    from omegaconf import OmegaConf
    from ray.cluster_utils import Cluster

    from sts.commands.predict import predict
    from sts.config import compose
    from sts.core.provenance import cpu
    from sts.data.readers import read_pairs
    from sts.resources import resource

    found = cpu()
    print(f"host: {found['model']} [{' '.join(found['flags'])}], {os.cpu_count()} cores; ray {ray.__version__}")
    pairs = read_pairs(resource("stsb/sts-test.csv"), "stsb")
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    (work / "in").mkdir()
    per_file = args.rows // args.files
    for f in range(args.files):
        with open(work / "in" / f"part-{f}.csv", "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "line1", "line2"])
            for i in range(per_file):
                k = (f * per_file + i) % len(pairs)
                writer.writerow([f"{f}-{i}", pairs.sentence1[k], pairs.sentence2[k]])
    rows = per_file * args.files

    def cfg(**overrides: object):
        base = compose("predict", ["input=x"])
        return OmegaConf.merge(base, {"progress": False, "preview_rows": 0, "precision": "fp32", "backend": "torch", "columns": ["line1", "line2"], **overrides})

    local = {}
    start = time.perf_counter()
    for path in sorted(glob.glob(str(work / "in" / "*.csv"))):
        with contextlib.redirect_stdout(io.StringIO()):
            out = predict(cfg(input=path, output=str(work / f"{Path(path).stem}.pred.csv")))
        with open(out, encoding="utf-8", newline="") as f:
            local.update({r["id"]: float(r["score"]) for r in csv.DictReader(f)})
    local_s = time.perf_counter() - start

    start = time.perf_counter()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False, "object_store_memory": 200 * 2**20})
    nodes.add_node(num_cpus=2, object_store_memory=200 * 2**20)
    ray.init(address=nodes.address, log_to_driver=False, logging_level="ERROR")
    nodes.wait_for_nodes()
    cluster_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            predict(cfg(input=str(work / "in"), engine="ray", output=str(work / "scored"), ray={"address": nodes.address, "concurrency": args.actors}))
        ray_s = time.perf_counter() - start
    finally:
        ray.shutdown()
        nodes.shutdown()
    import pyarrow.parquet as pq

    scored = pq.read_table(work / "scored").to_pylist()
    worst = max(abs(r["score"] - local[r["id"]]) for r in scored)
    print(f"{rows} rows in {args.files} files, bundled all-MiniLM-L6-v2, fp32 torch")
    print(f"one process (predict.py):      {local_s:6.1f} s  {rows / local_s:7.1f} rows/s")
    print(f"two-node local cluster start:  {cluster_s:6.1f} s  (not counted below)")
    print(f"engine=ray, {args.actors} actors x 1 CPU:   {ray_s:6.1f} s  {rows / ray_s:7.1f} rows/s  (job start, actors loading the model, reading, writing included)")
    print(f"largest |score difference|: {worst:.2e} over {len(scored)} rows (predict.py's CSV holds 6 decimals)")


if __name__ == "__main__":
    main()
