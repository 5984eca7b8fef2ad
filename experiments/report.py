"""Regenerate experiments/results.csv and experiments/RESULTS.md from the runs' own output.

    python experiments/report.py

Reads experiments/runs/<experiment>/seed<k>/metrics.json (written by train.py), the transfer
evaluations beside them (transfer/<data>.json), the both-orders rescoring of cross-encoders
(both_orders/<split>.json) and experiments/peer/*.json (written by
peer_sentence_transformers.py). Nothing here is typed by hand except the published anchors.
"""
from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS, PEER = HERE / "runs", HERE / "peer"
COLUMNS = ["experiment", "encoder", "architecture", "frozen", "loss", "epochs", "seed", "dev_spearman", "test_spearman", "test_pearson", "train_seconds", "hardware", "git_commit", "command"]
sys.path.insert(0, str(HERE))
from campaign import read_rows  # the list of rows and their order: experiments/campaign.yaml

# issue 3's targets: dev-chosen recipe's mean test Spearman, and the peer's best-known recipe + margin
TARGETS = {"BiEncoder": (86.0, 85.54, 0.5), "CrossEncoder": (85.0, 82.93, 2.0)}
# issue 23's: the dev-chosen MiniLM student's mean test Spearman, and the mpnet cross-encoder teacher's
STUDENT_TARGETS = {"BiEncoder": 87.0, "CrossEncoder": 88.0}
TEACHER, TEACHER_TARGET = "all-mpnet-base-v2", 89.5
UNTRAINED = "zero_shot"  # the untrained encoder's row: the transfer each chosen recipe must not fall below
PUBLISHED = [
    ("SBERT-STSb-base (Reimers & Gurevych 2019, bi-encoder)", "84.67"),
    ("BERT-STSb-base cross-encoder (SBERT paper)", "84.30"),
    ("cross-encoder/stsb-TinyBERT-L4", "85.50"),
    ("cross-encoder/stsb-distilroberta-base", "87.92"),
    ("all-MiniLM-L6-v2 zero-shot (expected)", "82.03"),
]


BUNDLED = "all-MiniLM-L6-v2"


def encoder_of(run_dir: Path, record: dict) -> str:
    """The pretrained checkpoint a run started from: as its metrics.json says (runs of staged
    recipes), else by its resolved config: the bundled MiniLM (null), a stage of one of our recipes
    (experiments/runs/..., every one grown from MiniLM), or the folder / hub id named."""
    import yaml

    if record.get("encoder"):
        return record["encoder"]
    config = run_dir / ".hydra" / "config.yaml"
    name = (yaml.safe_load(config.read_text()).get("encoder") or {}).get("name_or_path") if config.is_file() else None
    if name in (None, "", "bundled") or "experiments/runs/" in str(name):
        return BUNDLED
    return Path(str(name)).name


def load_runs(order: list) -> list[dict]:
    """Every recorded run as a results.csv row, in the order of the campaign's rows."""
    rows = []
    for path in sorted(RUNS.glob("*/seed*/metrics.json")):
        r = json.loads(path.read_text())
        m = r["metrics"]
        # a multi-stage recipe's stages count too: sts/training/recipe.py adds stages/ in train_seconds; runs
        # recorded by the shell campaign before it kept them in stage*/ (stage0_* shared with other rows)
        seconds = m["train_seconds"] + sum(json.loads(s.read_text())["metrics"]["train_seconds"] for s in path.parent.glob("stage*/metrics.json"))
        rows.append({
            # the folder names the row: an ablation re-run of an experiment config gets its own folder
            "experiment": path.parent.parent.name, "encoder": encoder_of(path.parent, r), "architecture": r["architecture"], "frozen": r["frozen"], "loss": r["loss"],
            "epochs": r["epochs"], "seed": r["seed"],
            "dev_spearman": round(100 * m["val/spearman"], 2), "test_spearman": round(100 * m["test/spearman"], 2),
            "test_pearson": round(100 * m["test/pearson"], 2), "train_seconds": round(seconds, 1),
            "hardware": r["hardware"], "git_commit": r["git_commit"], "command": r["command"], "_dir": path.parent,
        })
    rank = {row.name: i for i, row in enumerate(order)}
    return sorted(rows, key=lambda r: (rank.get(r["experiment"], len(order)), r["experiment"], r["seed"]))


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def md_table(rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] + ["| " + " | ".join(map(str, r)) + " |" for r in rows[1:]])


def experiments_table(runs: list[dict]) -> str:
    rows = [["experiment", "encoder", "architecture", "frozen", "loss", "epochs", "seeds", "dev Spearman", "test Spearman", "test Pearson", "train s (mean)", "command (seed varies)"]]
    for name in dict.fromkeys(r["experiment"] for r in runs):
        group = [r for r in runs if r["experiment"] == name]
        first = group[0]
        rows.append([
            name, first["encoder"], first["architecture"], str(first["frozen"]).lower(), first["loss"], str(first["epochs"]), str(len(group)),
            mean_std([r["dev_spearman"] for r in group]), mean_std([r["test_spearman"] for r in group]),
            mean_std([r["test_pearson"] for r in group]), f"{statistics.mean(r['train_seconds'] for r in group):.0f}",
            f"`{first['command']}`",
        ])
    return md_table(rows)


SEEDS = 3  # a recipe is chosen from those run with this many seeds; fewer is exploration


def transfer_records(run: dict) -> list[tuple[str, dict]]:
    """(data set, its metrics) of each zero-shot transfer evaluation beside a run (written by evaluate.py)."""
    records = (json.loads(path.read_text()) for path in sorted((run["_dir"] / "transfer").glob("*.json")))
    return [(t["data"], t["metrics"]["all"]) for t in records]


def transfer_of(group: list[dict]) -> dict[str, dict[str, float]]:
    """Zero-shot transfer (x100) per data set, mean over the runs of a recipe that recorded it."""
    per: dict[str, list[dict]] = {}
    for r in group:
        for data, metrics in transfer_records(r):
            per.setdefault(data, []).append(metrics)
    return {data: {"n": len(ms), **{k: 100 * statistics.mean(m[k] for m in ms) for k in ("spearman", "accuracy", "f1")}} for data, ms in per.items()}


def transfer_score(group: list[dict]) -> float | None:
    """Mean zero-shot Spearman over the data sets a recipe was measured on (threshold-free), None if none."""
    transfer = transfer_of(group)
    return statistics.mean(t["spearman"] for t in transfer.values()) if transfer else None


def seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def dev_mean(group: list[dict]) -> float:
    return statistics.mean(r["dev_spearman"] for r in group)


def chosen(runs: list[dict]) -> dict[str, tuple[str, list[dict], str]]:
    """Per architecture, among fine-tuned MiniLM recipes run with SEEDS seeds: the best mean dev
    Spearman, unless another within its seed noise (one dev std) transfers better zero-shot; with the
    recipe's runs and why it was chosen. A single lucky seed cannot win; larger teachers have their own rows."""
    out = {}
    for arch in dict.fromkeys(r["architecture"] for r in runs):
        recipes = {}
        for r in runs:
            if r["architecture"] == arch and not r["frozen"] and r["experiment"] != UNTRAINED and r["encoder"] == BUNDLED:
                recipes.setdefault(r["experiment"], []).append(r)
        recipes = {e: group for e, group in recipes.items() if len(group) >= SEEDS}
        if not recipes:
            continue
        best = max(recipes, key=lambda e: dev_mean(recipes[e]))
        why = f"`{best}` has the best mean dev Spearman ({mean_std([r['dev_spearman'] for r in recipes[best]])})"
        noise = statistics.stdev(r["dev_spearman"] for r in recipes[best])
        scored = {e: transfer_score(g) for e, g in recipes.items() if dev_mean(g) >= dev_mean(recipes[best]) - noise}
        if scored[best] is not None and len([v for v in scored.values() if v is not None]) > 1:
            pick = max((e for e, v in scored.items() if v is not None), key=lambda e: scored[e])
            if pick != best:
                why += (f"; `{pick}` is within its seed noise on dev ({mean_std([r['dev_spearman'] for r in recipes[pick]])}) and transfers better "
                        f"(mean zero-shot Spearman on SICK and MSRP {scored[pick]:.2f} vs {scored[best]:.2f}), so it is chosen")
                best = pick
        out[arch] = (best, recipes[best], why)
    return out


def transfer_lines(group: list[dict], untrained: list[dict]) -> list[str]:
    """The chosen recipe's zero-shot transfer against the untrained encoder's, per data set."""
    mine, bar = transfer_of(group), transfer_of(untrained)
    if not mine:
        return ["  - transfer: none recorded (`transfer` in experiments/campaign.yaml names no data set its recipe never trained on)"]
    lines = []
    for data, t in mine.items():
        if data not in bar:
            lines.append(f"  - transfer to {data}: Spearman {t['spearman']:.2f} ({seeds(t['n'])}); the untrained encoder's is not recorded")
            continue
        u = bar[data]
        keys = ("spearman",) if data == "sick" else ("spearman", "accuracy", "f1")
        worse = [k for k in keys if t[k] < u[k]]
        figures = ", ".join(f"{k} {t[k]:.2f} vs {u[k]:.2f}" for k in keys)
        lines.append(f"  - transfer to {data} no worse than the untrained encoder (`{UNTRAINED}`): {figures} ({seeds(t['n'])}): "
                     + ("met" if not worse else f"NOT met ({', '.join(worse)})"))
    return lines


def selection(runs: list[dict]) -> str:
    """The dev-chosen recipe per architecture, its test figure, and the issues' targets checked."""
    lines = []
    untrained = [r for r in runs if r["experiment"] == UNTRAINED]
    verdict = lambda value, bar: "met" if value >= bar else "NOT met"  # noqa: E731
    for arch, (best, group, why) in chosen(runs).items():
        test = statistics.mean(r["test_spearman"] for r in group)
        lines.append(f"- {arch}: among MiniLM recipes run with {SEEDS} seeds, {why}; its test Spearman is {mean_std([r['test_spearman'] for r in group])}.")
        if arch in TARGETS:
            target, peer_best, margin = TARGETS[arch]
            for label, bar in ((f">= {target:.1f}", target), (f">= peer best-known {peer_best:.2f} + {margin:.1f}", peer_best + margin)):
                lines.append(f"  - target test Spearman {label}: {test:.2f}, {verdict(test, bar)}")
        if arch in STUDENT_TARGETS:
            lines.append(f"  - target test Spearman >= {STUDENT_TARGETS[arch]:.1f} (issue 23, MiniLM student): {test:.2f}, {verdict(test, STUDENT_TARGETS[arch])}")
        lines += transfer_lines(group, untrained)
    teachers: dict[str, list[dict]] = {}
    for r in runs:
        if r["encoder"] == TEACHER and r["architecture"] == "CrossEncoder":
            teachers.setdefault(r["experiment"], []).append(r)
    if teachers:
        best = max(teachers, key=lambda e: dev_mean(teachers[e]))
        group = teachers[best]
        test = statistics.mean(r["test_spearman"] for r in group)
        lines.append(f"- {TEACHER} cross-encoder teacher: `{best}` has the best mean dev Spearman ({mean_std([r['dev_spearman'] for r in group])}, "
                     f"{seeds(len(group))}); its test Spearman is {mean_std([r['test_spearman'] for r in group])}.")
        short = "" if len(group) >= SEEDS else f"; {len(group)} of the {SEEDS} seeds the target asks for"
        lines.append(f"  - target test Spearman >= {TEACHER_TARGET:.1f} (issue 23): {test:.2f}, {verdict(test, TEACHER_TARGET)}{short}")
    return "\n".join(lines)


TRANSFER_NOTE = (
    "SICK (train+trial, relatedness) and MSRP train (binary; accuracy/F1 at the threshold stored from STS-B dev). "
    "A model is listed only for data its recipe never trained on (`transfer` in experiments/campaign.yaml): "
    "recipes with a SICK or MSRP stage, the dev-chosen `cross_distil_wide` among them, have no zero-shot row for it."
)


def transfer_table(runs: list[dict]) -> str | None:
    rows = [["experiment", "seed", "data", "Spearman", "Pearson", "accuracy", "F1", "threshold"]]
    for r in runs:
        for data, m in transfer_records(r):
            rows.append([r["experiment"], str(r["seed"]), data, *(f"{100 * m[k]:.2f}" for k in ("spearman", "pearson", "accuracy", "f1")), f"{m['threshold']:.3f}"])
    return md_table(rows) if len(rows) > 1 else None


def both_orders_table(runs: list[dict]) -> str | None:
    """Cross-encoders trained and recorded scoring each pair as given, rescored in both orders by
    `evaluate.py both_orders=true` (`both_orders` in experiments/campaign.yaml): mean over the seeds rescored."""
    groups: dict[str, list[tuple[dict, dict, dict]]] = {}
    for r in runs:
        files = [r["_dir"] / "both_orders" / f"{split}.json" for split in ("val", "test")]
        if all(f.is_file() for f in files):
            val, test = (json.loads(f.read_text())["metrics"]["all"] for f in files)
            groups.setdefault(r["experiment"], []).append((r, val, test))
    if not groups:
        return None
    rows = [["experiment", "seeds", "dev as given", "dev both orders", "dev change", "test as given", "test both orders", "test change"]]
    for name, group in groups.items():
        dev0, dev1 = [r["dev_spearman"] for r, _, _ in group], [round(100 * v["spearman"], 2) for _, v, _ in group]
        test0, test1 = [r["test_spearman"] for r, _, _ in group], [round(100 * t["spearman"], 2) for _, _, t in group]
        change = lambda after, before: f"{statistics.mean(after) - statistics.mean(before):+.2f}"  # noqa: E731
        rows.append([name, str(len(group)), mean_std(dev0), mean_std(dev1), change(dev1, dev0), mean_std(test0), mean_std(test1), change(test1, test0)])
    return md_table(rows)


def peer_table() -> str | None:
    records = [json.loads(p.read_text()) for p in sorted(PEER.glob("*.json"))]
    if not records:
        return None
    rows = [["arch", "loss", "epochs", "lr", "batch", "seed", "our overrides", "ours dev", "sentence-transformers", "ours", "ours - peer", "peer s", "ours s", "command"]]
    for r in records:
        rows.append([
            r["arch"], r["loss"], str(r["epochs"]), f"{r['lr']:g}", str(r["batch_size"]), str(r["seed"]), " ".join(r["ours_overrides"]) or "-",
            f"{r['ours_dev_spearman']:.2f}", f"{r['peer_test_spearman']:.2f}", f"{r['ours_test_spearman']:.2f}", f"{r['difference']:+.2f}",
            f"{r['peer_train_seconds']:.0f}", f"{r['ours_train_seconds']:.0f}", f"`{r['command']}`",
        ])
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["arch"], r["loss"], r["epochs"], r["lr"], r["batch_size"], tuple(r["ours_overrides"])), []).append(r)
    for (arch, loss, epochs, lr, batch, overrides), group in groups.items():
        if len(group) > 1:
            peer, ours = [r["peer_test_spearman"] for r in group], [r["ours_test_spearman"] for r in group]
            dev = [r["ours_dev_spearman"] for r in group]
            rows.append([
                arch, loss, str(epochs), f"{lr:g}", str(batch), f"mean of {len(group)}", " ".join(overrides) or "-", mean_std(dev), mean_std(peer), mean_std(ours),
                f"{statistics.mean(ours) - statistics.mean(peer):+.2f}", "", "", "",
            ])
    return md_table(rows)


def main() -> None:
    order, renamed = read_rows()
    runs = load_runs(order)
    with open(HERE / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    hardware = sorted({r["hardware"] for r in runs})
    parts = [
        "# Recorded results (generated by `python experiments/report.py`; do not edit)",
        "STS Benchmark, Spearman and Pearson x 100. Model and recipe selection on dev; test reported only. "
        "Every run: `experiments/runs/<experiment>/seed<k>/metrics.json`; per-seed rows in `results.csv`. "
        "Multi-stage recipes keep the stage trained in their folder in `stage1/` and copies of the metrics of stages (or a teacher) they share with other rows in `stage0_*/`; their train seconds include all of them.",
        f"Hardware: {'; '.join(hardware) or 'n/a'}.",
        "## Experiments (mean ± std over seeds)",
        experiments_table(runs) if runs else "(no runs yet)",
        "## Recipe chosen on dev",
        f"Per architecture, among MiniLM recipes run with {SEEDS} seeds: the best mean dev Spearman, unless a recipe within one dev std of it "
        "transfers better zero-shot (mean Spearman on SICK and MSRP); the teachers are chosen among their own runs.",
        selection(runs) or "(no fine-tuned runs yet)",
    ]
    peer = peer_table()
    if peer:
        parts += ["## Same-run comparison with sentence-transformers", "Both trained from the bundled all-MiniLM-L6-v2 with the same data, batch size, learning rate, warm-up, epochs and seed in one process; both scored on STS-B test by the same Spearman function.", peer]
    both = both_orders_table(runs)
    if both:
        parts += [
            "## Cross-encoders scored in both orders",
            "A cross-encoder reads (s1, s2) jointly, so (s2, s1) scores differently. These models were trained and recorded scoring each pair as given; "
            "here the same model files score every pair both ways and average the logits "
            "(`python evaluate.py ckpt=experiments/runs/<experiment>/seed<k>/model.pt split=val|test both_orders=true`). "
            "Rows above trained with `model.both_orders=true` choose their checkpoint and soup on that score.",
            both,
        ]
    transfer = transfer_table(runs)
    if transfer:
        parts += ["## Zero-shot transfer of the STS-B models", TRANSFER_NOTE, transfer]
    if renamed:
        parts += [
            "## Renamed recipes",
            "Rows recorded before a recipe was renamed keep the old name in their command and metrics.json; their folder and row carry the new one.",
            md_table([["recorded as", "now"], *([old, new] for old, new in renamed.items())]),
        ]
    parts += ["## Published anchors (STS-B test Spearman x 100, for context; not run here)", md_table([["model", "Spearman"], *map(list, PUBLISHED)])]
    (HERE / "RESULTS.md").write_text("\n\n".join(parts) + "\n")
    print(f"wrote {HERE / 'results.csv'} ({len(runs)} runs) and {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
