"""long_inputs=truncate vs chunk on long texts with known gold, built from STS-B.

    python experiments/bench_long_inputs.py [--tokens 192] [--rounds 1] [--cross /work/runs/cross_from_sick/seed0/model.pt] [--limit N]

The long-text sets: STS-B dev (to choose) and test (to report), each cut into groups of
consecutive pairs, a group closing as soon as both its sentence1s and its sentence2s reach
--tokens tokens (the bundled tokenizer's, without special tokens; 192 = 1.5x the bundled MiniLM's
128, so every text is longer than max_length); its sentence1s, joined by spaces, are one long
text, its sentence2s the other, and its gold is the mean of its pairs' gold scores, so the whole
of both texts decides it. A last group short of --tokens is dropped. Round 0 takes the pairs in
file order; each further round (--rounds) in a seeded shuffle (random.Random(round)), more
groups from the same pairs (not independent ones).

Scored with fp32 torch (the same arithmetic on any host): the bundled bi-encoder (zero-shot)
and, when the file exists, the cross-encoder --cross, each with long_inputs=truncate and chunk;
the cross-encoder with chunk_reduce=max and mean. Which reduction to ship is chosen on the
dev-built set only (the higher Spearman); the test-built set reports it. A paired bootstrap
(1000 resamples of the groups, seed 0) gives a 95% interval for each chunk - truncate and
max - mean difference. The last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sts.core import provenance  # noqa: E402
from sts.core.metrics import spearman  # noqa: E402
from sts.data.terminal import format_table  # noqa: E402

SPLITS = {"dev": "stsb/sts-dev.csv", "test": "stsb/sts-test.csv"}
CROSS = "/work/runs/cross_from_sick/seed0/model.pt"


def long_pairs(path: str, tokens: int, rounds: int, tokenizer: Any) -> tuple[list[str], list[str], np.ndarray]:
    """Consecutive STS-B pairs joined into long pairs (see the module docstring)."""
    from sts.core.inputs import content
    from sts.data.readers import read_pairs
    from sts.resources import resource

    pairs = read_pairs(resource(path), "stsb", [0, 5])
    lengths = [[len(ids) for ids in content(tokenizer, side)] for side in (pairs.sentence1, pairs.sentence2)]
    first, second, gold = [], [], []
    for r in range(rounds):
        order = list(range(len(pairs)))
        if r:
            random.Random(r).shuffle(order)
        group: list[int] = []
        for i in order:
            group.append(i)
            if min(sum(lengths[0][j] for j in group), sum(lengths[1][j] for j in group)) >= tokens:
                first.append(" ".join(pairs.sentence1[j] for j in group))
                second.append(" ".join(pairs.sentence2[j] for j in group))
                gold.append(float(np.mean([pairs.gold[j] for j in group])))
                group = []
    return first, second, np.asarray(gold)


def rho(scores: np.ndarray, gold: np.ndarray) -> float:
    return spearman(torch.as_tensor(scores), torch.as_tensor(gold))


def bootstrap(a: np.ndarray, b: np.ndarray, gold: np.ndarray, n: int = 1000) -> list[float]:
    """95% interval of Spearman(a) - Spearman(b) over resampled groups (paired), x100."""
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(n):
        i = rng.integers(0, len(gold), len(gold))
        diffs.append(100 * (rho(a[i], gold[i]) - rho(b[i], gold[i])))
    return [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]


def difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], sets: dict) -> dict[str, dict]:
    """Per set: Spearman(a) - Spearman(b), x100, and its bootstrap interval."""
    return {split: {"diff": 100 * (rho(a[split], gold) - rho(b[split], gold)), "ci95": bootstrap(a[split], b[split], gold)} for split, (_, _, gold) in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=192, help="tokens each text of a long pair reaches at least")
    parser.add_argument("--rounds", type=int, default=1, help="passes over each split (round 0 in file order, then seeded shuffles)")
    parser.add_argument("--cross", default=CROSS, help="a cross-encoder model file (skipped when absent)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="the first N long pairs of each set only (a smoke run)")
    args = parser.parse_args()

    import sts
    from sts.core.inputs import content
    from sts.core.windows import LongInputs

    print(f"command: python experiments/{provenance.command()}")
    print(f"hardware: {provenance.hardware()}")
    print(f"versions: {provenance.versions()}; git {provenance.git_commit()}")
    bundled = sts.load(precision="fp32", backend="torch")
    tokenizer = bundled.module.tokenizer
    sets = {split: tuple(part[: args.limit] for part in long_pairs(path, args.tokens, args.rounds, tokenizer)) for split, path in SPLITS.items()}
    models = {"bi": None} | ({"cross": args.cross} if Path(args.cross).exists() else {})
    record: dict = {"tokens": args.tokens, "rounds": args.rounds, "limit": args.limit, "models": {name: path or "bundled" for name, path in models.items()}, "sets": {}}
    for split, (first, second, gold) in sets.items():
        # each text's tokens as the bundled model reads it whole (special tokens included)
        lengths = np.asarray([len(ids) for ids in content(tokenizer, first + second)]) + bundled.scorer.inputs.template.single_specials
        record["sets"][split] = {"pairs": len(gold), "tokens_median": float(np.median(lengths)), "tokens_min": int(lengths.min()), "tokens_max": int(lengths.max()),
                                 "over_max_length": float((lengths > bundled.module.max_length).mean()), "gold_std": float(gold.std())}
    print(f"long pairs: consecutive STS-B pairs until both texts reach {args.tokens} tokens, {args.rounds} round(s); " + "; ".join(
        f"{split}: {s['pairs']} pairs, {s['tokens_min']}-{s['tokens_max']} tokens per text (median {s['tokens_median']:.0f}), "
        f"{100 * s['over_max_length']:.0f}% over max_length {bundled.module.max_length}" for split, s in record["sets"].items()))

    runs: dict[str, dict] = {"bi": {"truncate": LongInputs(), "chunk": LongInputs("chunk")},
                             "cross": {"truncate": LongInputs(), "chunk_max": LongInputs("chunk", reduce="max"), "chunk_mean": LongInputs("chunk", reduce="mean")}}
    scores: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    rows = []
    for name, path in models.items():
        scores[name] = {}
        for mode, long in runs[name].items():
            model = sts.load(path, precision="fp32", backend="torch", batch_size=args.batch_size, long_inputs=long)
            scores[name][mode] = {}
            for split, (first, second, gold) in sets.items():
                start = time.perf_counter()
                scores[name][mode][split] = model.score(first, second, clip=False)
                seconds = time.perf_counter() - start
                value = 100 * rho(scores[name][mode][split], gold)
                record.setdefault(name, {}).setdefault(mode, {})[split] = {"spearman_x100": value, "seconds": seconds}
                rows.append([name, mode, split, f"{value:.2f}", f"{seconds:.1f}"])
    print(format_table([["model", "long_inputs", "set", "Spearman x100", "s"], *rows]))

    for name in scores:
        chunk = "chunk"
        if name == "cross":
            dev = {mode: record["cross"][mode]["dev"]["spearman_x100"] for mode in ("chunk_max", "chunk_mean")}
            chunk = max(dev, key=dev.get)
            record["cross"]["chosen_on_dev"] = chunk.removeprefix("chunk_")
            record["cross"]["max_minus_mean_x100"] = difference(scores[name]["chunk_max"], scores[name]["chunk_mean"], sets)
            print(f"cross-encoder: chunk_reduce={record['cross']['chosen_on_dev']} chosen on dev (max {dev['chunk_max']:.2f}, mean {dev['chunk_mean']:.2f}); "
                  f"test {record['cross'][chunk]['test']['spearman_x100']:.2f}")
        record[name]["chunk_minus_truncate_x100"] = difference(scores[name][chunk], scores[name]["truncate"], sets)
        for first, second, key in [(chunk, "truncate", "chunk_minus_truncate_x100")] + ([("chunk_max", "chunk_mean", "max_minus_mean_x100")] if name == "cross" else []):
            for split, found in record[name][key].items():
                print(f"{name} {split}: {first} - {second} = {found['diff']:+.2f} Spearman x100 (95% bootstrap interval {found['ci95'][0]:+.2f} to {found['ci95'][1]:+.2f})")
    record["git"] = provenance.git_commit()
    print(json.dumps(record))


if __name__ == "__main__":
    main()
