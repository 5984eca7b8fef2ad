"""Gather the jobs of a Hydra multirun into tables and a chart:

    python experiments/collect.py multirun/frozen_vs_finetuned/<date>

writes into that directory results.csv (one row per job: overrides, dev/test metrics, training
time), results.md (jobs that differ only in `seed` averaged, mean ± std) and results.png (dev and
test Spearman per configuration, error bars = std over seeds). Reads each job's .hydra/overrides.yaml
and its metrics.json (or, failing that, the metrics stored in its model.pt, loaded with
weights_only=True, never unpickling code).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

METRICS = ("val/spearman", "val/pearson", "test/spearman", "test/pearson", "test/f1", "train_seconds")
# a job differing only in these is another repetition of the same configuration
IGNORED = ("seed=",)


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every finished job below `sweep_dir`: its overrides and the metrics train.py stored."""
    jobs = []
    for overrides_file in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        record, model_file = job_dir / "metrics.json", job_dir / "model.pt"
        if record.is_file():  # written by train.py beside the model; small enough to keep in git
            metrics = json.loads(record.read_text())["metrics"]
        elif model_file.is_file():
            metrics = torch.load(model_file, map_location="cpu", weights_only=True, mmap=True)["sts"].get("metrics", {})
        else:
            print(f"skipped {job_dir}: no metrics.json or model.pt (unfinished or failed job)", file=sys.stderr)
            continue
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        jobs.append({"job": str(job_dir.relative_to(sweep_dir)), "overrides": overrides, "metrics": metrics})
    return jobs


def config_key(overrides: list[str], shared: set[str]) -> str:
    """What distinguishes a configuration: its overrides, less seeds and those all jobs share."""
    return " ".join(o for o in overrides if o not in shared and not o.startswith(IGNORED)) or "(defaults)"


def seed_of(overrides: list[str]) -> str:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "")


def summarise(jobs: list[dict[str, Any]]) -> tuple[dict[str, dict[str, np.ndarray]], set[str]]:
    """{configuration: {metric: values over seeds}}, and the overrides every job shares."""
    shared = set.intersection(*(set(j["overrides"]) for j in jobs)) if len(jobs) > 1 else set()
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs:
        for name in METRICS:
            groups[config_key(job["overrides"], shared)][name].append(float(job["metrics"].get(name, np.nan)))
    return {k: {m: np.asarray(v) for m, v in g.items()} for k, g in groups.items()}, shared


def write_csv(jobs: list[dict[str, Any]], shared: set[str], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "configuration", "seed", *METRICS])
        for job in jobs:
            writer.writerow([job["job"], config_key(job["overrides"], shared), seed_of(job["overrides"]), *(job["metrics"].get(m, "") for m in METRICS)])


def _cell(values: np.ndarray, scale: float, digits: int) -> str:
    values = values[~np.isnan(values)]
    if not len(values):
        return "-"
    mean = f"{scale * values.mean():.{digits}f}"
    return mean if len(values) == 1 else f"{mean} ± {scale * values.std(ddof=1):.{digits}f}"


def write_markdown(groups: dict[str, dict[str, np.ndarray]], shared: set[str], path: Path) -> None:
    header = ["configuration", "seeds", "dev Spearman", "dev Pearson", "test Spearman", "test Pearson", "test F1", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, values in groups.items():
        cells = [_cell(values[m], 100, 2) for m in METRICS[:-1]] + [_cell(values["train_seconds"], 1, 0)]
        lines.append(f"| {key} | {len(values['val/spearman'])} | " + " | ".join(cells) + " |")
    note = f"\nAll jobs: `{' '.join(sorted(shared))}`. " if shared else "\n"
    path.write_text("\n".join(lines) + "\n" + note + "Correlations x100, mean ± std over seeds.\n")


def write_chart(groups: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(groups)
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(keys)), 4.5))
    for offset, (metric, label) in zip((-0.2, 0.2), (("val/spearman", "dev"), ("test/spearman", "test"))):
        values = [100 * groups[k][metric] for k in keys]
        means = [np.nanmean(v) if np.isfinite(v).any() else 0.0 for v in values]
        errors = [np.nanstd(v, ddof=1) if np.isfinite(v).sum() > 1 else 0.0 for v in values]
        ax.bar(x + offset, means, width=0.4, yerr=errors, capsize=4, label=label)
    ax.set_xticks(x, [k.replace(" ", "\n").removeprefix("experiment=") for k in keys], fontsize=8, rotation=25, ha="right")
    ax.set_ylabel("Spearman x100 (error bars: std over seeds)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def collect(sweep_dir: Path) -> dict[str, Path]:
    """Write results.csv, results.md and results.png into `sweep_dir`; returns their paths."""
    jobs = read_jobs(sweep_dir)
    if not jobs:
        raise SystemExit(f"error: {sweep_dir}: no finished jobs (<job>/.hydra/overrides.yaml with <job>/model.pt)")
    groups, shared = summarise(jobs)
    out = {"csv": sweep_dir / "results.csv", "markdown": sweep_dir / "results.md", "chart": sweep_dir / "results.png"}
    write_csv(jobs, shared, out["csv"])
    write_markdown(groups, shared, out["markdown"])
    write_chart(groups, out["chart"], title=f"{sweep_dir.name}: {len(jobs)} jobs")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    out = collect(args.sweep_dir)
    print(out["markdown"].read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in out.values()))


if __name__ == "__main__":
    main()
