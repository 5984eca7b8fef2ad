"""Run every recorded row of experiments/campaign.yaml that is not recorded yet, then regenerate
experiments/results.csv and RESULTS.md. One training at a time (each row's stages run inside it).

    python experiments/campaign.py --dry-run            # every row and seed: recorded, or the command to run
    python experiments/campaign.py                      # run what is missing (all rows)
    python experiments/campaign.py cross_distil_wide --seeds 0

A row is `python train.py experiment=<recipe> seed=<k> hydra.run.dir=experiments/runs/<name>/seed<k>
<overrides>`, skipped when its metrics.json exists; then its zero-shot transfer evaluations and
both-orders rescoring (evaluate.py), each skipped when its result exists.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = HERE / "runs"
REGISTRY = HERE / "campaign.yaml"
TRANSFER = {  # evaluate.py overrides scoring an STS-B model zero-shot on another data set
    "sick": ["data=sick", "split=test", "data.test=[${sts_resource:sick/SICK_train.txt},${sts_resource:sick/SICK_trial.txt}]"],
    "msrp": ["data=msrp", "split=test", "data.test=${sts_resource:msrp/msr_paraphrase_train.txt}"],
}
FIELDS = {"name", "recipe", "overrides", "seeds", "transfer", "transfer_seeds", "both_orders", "requires", "note"}


@dataclass
class Row:
    """One recorded row: a recipe, the overrides of a probe, its seeds and its extra evaluations."""

    name: str
    recipe: str
    overrides: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    transfer: list[str] = field(default_factory=list)
    transfer_seeds: list[int] | None = None
    both_orders: bool = False
    requires: list[str] = field(default_factory=list)
    note: str = ""

    def folder(self, seed: int) -> Path:
        return RUNS / self.name / f"seed{seed}"

    def train_args(self, seed: int) -> list[str]:
        where = self.folder(seed).relative_to(ROOT)
        return ["train.py", f"experiment={self.recipe}", f"seed={seed}", f"hydra.run.dir={where}", "trainer.enable_progress_bar=false", *self.overrides]

    def evaluations(self, seed: int) -> list[tuple[Path, list[str]]]:
        """(result file, evaluate.py arguments) of this seed's transfer and both-orders scoring."""
        folder, out = self.folder(seed), []
        model = folder.relative_to(ROOT) / "model.pt"
        if seed in (self.transfer_seeds if self.transfer_seeds is not None else self.seeds):
            for data in self.transfer:
                out.append((folder / "transfer" / f"{data}.json", ["evaluate.py", f"ckpt={model}", *TRANSFER[data], f"out_dir={model.parent}/transfer/{data}", "progress=false"]))
        if self.both_orders:
            for split in ("val", "test"):
                out.append((folder / "both_orders" / f"{split}.json", ["evaluate.py", f"ckpt={model}", f"split={split}", "both_orders=true", f"out_dir={model.parent}/both_orders/{split}", "progress=false"]))
        return out


def read_rows(path: Path = REGISTRY) -> tuple[list[Row], dict[str, str]]:
    """The rows of campaign.yaml, checked (one line naming the row and field), and the renamed map."""
    data = yaml.safe_load(path.read_text())
    rows, seen = [], set()
    recipes = {p.stem for p in (ROOT / "sts" / "conf" / "experiment").glob("*.yaml")}
    for i, raw in enumerate(data.get("rows") or []):
        where = f"{path}: row {i + 1}"
        if not isinstance(raw, dict) or "name" not in raw:
            raise SystemExit(f"error: {where}: must be a mapping with a name")
        unknown = sorted(set(raw) - FIELDS)
        if unknown:
            raise SystemExit(f"error: {where} ({raw['name']}): unknown field(s) {unknown}")
        row = Row(**{"recipe": raw["name"], **raw})
        if row.name in seen:
            raise SystemExit(f"error: {where}: {row.name} is listed twice")
        if row.recipe not in recipes:
            raise SystemExit(f"error: {where} ({row.name}): no recipe sts/conf/experiment/{row.recipe}.yaml")
        if set(row.transfer) - set(TRANSFER):
            raise SystemExit(f"error: {where} ({row.name}): transfer must be among {sorted(TRANSFER)}")
        seen.add(row.name)
        rows.append(row)
    return rows, dict(data.get("renamed") or {})


def command(args: list[str]) -> str:
    return "python " + " ".join(shlex.quote(a) for a in args)


def run(args: list[str], log: Path | None) -> bool:
    """One entry point as a subprocess (its own process: a fresh Hydra and a clean torch state)."""
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    if log is None:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False).returncode == 0
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False).returncode == 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="rows to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds of each row")
    parser.add_argument("--dry-run", action="store_true", help="list every row and seed: recorded, or what would run")
    args = parser.parse_args(argv)
    rows, _ = read_rows()
    unknown = sorted(set(args.names) - {r.name for r in rows})
    if unknown:
        raise SystemExit(f"error: {unknown}: not rows of {REGISTRY} (python experiments/campaign.py --dry-run lists them)")
    selected = [r for r in rows if not args.names or r.name in args.names]
    pending = 0
    for row in selected:
        for seed in row.seeds:
            if args.seeds and seed not in args.seeds:
                continue
            folder = row.folder(seed)
            missing = [v for v in row.requires if not os.environ.get(v)]
            trained = (folder / "metrics.json").is_file()
            todo = [(f, a) for f, a in row.evaluations(seed) if not f.is_file()]
            if args.dry_run:
                status = "recorded" if trained else f"to run{' (needs ' + ', '.join(missing) + ')' if missing else ''}"
                print(f"{row.name:36s} seed {seed}  {status:24s} {command(row.train_args(seed))}")
                for result, evaluation in todo:
                    print(f"{'':36s}         {'to score':24s} {command(evaluation)}")
                pending += (not trained) + len(todo)
                continue
            if not trained:
                if missing:
                    print(f"skipped {row.name} seed {seed}: set {', '.join(missing)} (docs/training.md, the all-mpnet-base-v2 teacher)")
                    continue
                print(f"== {row.name} seed {seed}: {command(row.train_args(seed))}", flush=True)
                if not run(row.train_args(seed), folder / "train.log"):
                    print(f"FAILED: {row.name} seed {seed} (see {folder / 'train.log'})")
                    continue
            for result, evaluation in todo:
                if run(evaluation, None):  # evaluate.py wrote <out_dir>/metrics.json; report.py reads the copy beside it
                    result.write_bytes((result.parent / result.stem / "metrics.json").read_bytes())
                else:
                    print(f"FAILED: {command(evaluation)}")
    if args.dry_run:
        print(f"{len(selected)} rows; {pending} runs or scorings to do")
        return
    subprocess.run([sys.executable, str(HERE / "report.py")], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
