"""Figures from the recorded training runs (experiments/results.csv, one row per run and seed;
experiments/RESULTS.md, written by experiments/report.py) and the README's headline table."""
from __future__ import annotations

import csv
import statistics
from functools import cache

from docgen import ROOT, renderer
from docgen.bench import number, read

RESULTS = ROOT / "experiments" / "results.csv"


@cache
def runs() -> dict[str, list[dict[str, str]]]:
    """experiment -> its rows (one per seed)."""
    out: dict[str, list[dict[str, str]]] = {}
    with RESULTS.open(newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["experiment"], []).append(row)
    return out


def spread(experiment: str, column: str) -> tuple[float, float, int]:
    """Mean, sample std (0 for one seed) and number of seeds of a column of an experiment's rows."""
    values = [float(r[column]) for r in runs()[experiment]]
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def shown(experiment: str, column: str) -> str:
    mean, std, n = spread(experiment, column)
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


@renderer("result")
def result(experiment: str, split: str = "both") -> str:
    """STS-B Spearman of a recorded experiment: `dev / test` (mean ± std over its seeds), or one split."""
    if split == "both":
        return f"{shown(experiment, 'dev_spearman')} / {shown(experiment, 'test_spearman')}"
    return shown(experiment, f"{split}_spearman")


@renderer("seeds")
def seeds(experiment: str) -> str:
    return str(len(runs()[experiment]))


@renderer("include")
def include(path: str, shift: str = "1") -> str:
    """A markdown file of the repository, its headings moved `shift` levels down."""
    lines = (ROOT / path).read_text().splitlines()
    prefix = "#" * int(shift)
    return "\n".join(prefix + line if line.startswith("#") else line for line in lines)


@renderer("headline")
def headline(*settings: str) -> str:
    """Three rows: quality (a recipe's STS-B test Spearman from results.csv), speed (bi-encoder
    scoring of STS-B test against sentence-transformers, a bench file) and serving (a bench_serve
    case). Settings: quality=EXPERIMENT baseline=EXPERIMENT speed=BENCH serving=BENCH case=CASE."""
    s = dict(item.split("=", 1) for item in settings)
    quality, baseline = s["quality"], s["baseline"]
    speed, serving = read(s["speed"]), read(s["serving"])
    score, clients = speed.record["predict_bi_stsb"], serving.record[s["case"]]
    mean, std, n = spread(quality, "test_spearman")
    rows = [
        "| | sts | for comparison | from |",
        "| --- | --- | --- | --- |",
        f"| **quality**: STS-B test Spearman x100, default recipe `{quality}` | {mean:.2f} ± {std:.2f} ({n} seeds) "
        f"| {shown(baseline, 'test_spearman')} (`{baseline}`: the bundled MiniLM untrained) | `experiments/results.csv` |",
        f"| **speed**: scoring STS-B test, bi-encoder, pairs/s | {number(score['ours'])} | {number(score['peer'])} sentence-transformers "
        f"(**{score['ratio']:.2f}x**) | `experiments/bench/{speed.name}.txt` (git {speed.commit}) |",
        f"| **serving**: `{s['case']}`, items/s (p99 ms) | {number(clients['ours'])} ({clients['ours_p99_ms']:.0f}) "
        f"| {number(clients['peer'])} ({clients['peer_p99_ms']:.0f}) FastAPI + sentence-transformers (**{clients['ratio']:.2f}x**) "
        f"| `experiments/bench/{serving.name}.txt` (git {serving.commit}) |",
    ]
    return "\n".join(rows)


@renderer("bundled")
def bundled_record() -> str:
    """The bundled model's shipped calibration, as a table."""
    import json

    from sts.io import bundled

    record = json.loads(bundled.RECORD.read_text())
    rows = [f"Threshold **{record['threshold']}** ({record['model']}, chosen on {record['data']} dev by F1).", "",
            "| split | " + " | ".join(record["test"]) + " |", "| --- |" + " --- |" * len(record["test"])]
    rows += [f"| {split} | " + " | ".join(number(v) for v in record[split].values()) + " |" for split in ("val", "test")]
    return "\n".join(rows)
