"""augment(cfg): new training pairs labelled by a trained model (AugSBERT, Thakur et al. 2021).

Each training sentence is paired with its nearest other training sentences by a bi-encoder's
embeddings (semantic-search sampling: random pairs would almost all be unrelated), optionally also
with farther neighbours and random partners (so the labels cover the whole scale), pairs already
in the gold data are dropped, and a teacher model (or the mean of several) scores the rest. The result is written in
STS-B's own format, so `data.train=[gold, silver]` trains on both with no new reader. With
`gold_pairs=true` the gold pairs are written too, with the teacher's scores in place of their
labels: a student trained on that file alone learns to match the teacher on gold and silver alike.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from sts.config import options, scoring_settings
from sts.api import load
from sts.data.tables import atomic_output, check_apart
from sts.errors import STSError


def neighbour_pairs(embeddings: torch.Tensor, ranks: Sequence[int], exclude: set[tuple[int, int]], random_partners: int = 0, seed: int = 0, block: int = 2048) -> list[tuple[int, int]]:
    """Each row with its neighbours of the given similarity ranks (1 = most cosine-similar other
    row) and `random_partners` random rows; every unordered pair once, none in `exclude` (pairs as
    (low, high) indices). Far ranks and random partners spread the labels over the whole scale:
    nearest neighbours alone are almost all near-paraphrases."""
    if not ranks or min(ranks) < 1:
        raise STSError(f"neighbour ranks must be >= 1, got {list(ranks)}")
    unit = F.normalize(embeddings.float(), dim=-1)
    n = len(unit)
    picks = torch.tensor([r - 1 for r in ranks if r < n], dtype=torch.long)
    seen, out = set(exclude), []

    def add(i: int, j: int) -> None:
        key = (min(i, j), max(i, j))
        if i != j and key not in seen:
            seen.add(key)
            out.append(key)

    for start in range(0, n if len(picks) else 0, block):  # no rank below n: no similarities needed
        rows = torch.arange(start, min(start + block, n))
        sims = unit[rows] @ unit.T
        sims[torch.arange(len(rows)), rows] = float("-inf")
        top = sims.topk(int(picks.max()) + 1, dim=1).indices[:, picks]
        for i, partners in zip(rows.tolist(), top.tolist()):
            for j in partners:
                add(i, j)
    if random_partners:
        rng = np.random.default_rng(seed)
        for i in range(n):
            for j in rng.integers(0, n, size=random_partners).tolist():
                add(i, j)
    return out


def augment(cfg: DictConfig) -> Path:
    options.check(cfg, options.AUGMENT)
    out = Path(cfg.out)
    if cfg.data.format != "stsb":
        raise STSError(f"data.format={cfg.data.format!r}: augment.py writes STS-B's format, so it augments data=stsb-style training sets only")
    if out.exists() and not cfg.overwrite:
        raise STSError(f"{out}: already exists; pass overwrite=true to replace it")
    sources = [cfg.data.train] if isinstance(cfg.data.train, str) else list(cfg.data.train)
    check_apart({"out": out}, {"data.train": sources, "teacher": cfg.teacher, "sampler": cfg.sampler, "calibration": cfg.get("calibration")})
    datamodule = instantiate(cfg.data, val=None, test=None)
    gold = datamodule.read()["train"]
    teachers = [cfg.teacher] if isinstance(cfg.teacher, str) else list(cfg.teacher)
    settings = scoring_settings(cfg)
    first_teacher = load(teachers[0], **settings)
    sampler = load(cfg.sampler, **settings) if cfg.sampler else first_teacher
    if sampler.architecture != "BiEncoder":
        raise STSError(f"{cfg.sampler or teachers[0]}: picking neighbours needs a bi-encoder's embeddings; set sampler=BI_ENCODER_MODEL")

    sentences = list(dict.fromkeys([*gold.sentence1, *gold.sentence2]))
    index = {s: i for i, s in enumerate(sentences)}
    known = {(min(index[a], index[b]), max(index[a], index[b])) for a, b in zip(gold.sentence1, gold.sentence2)}
    ranks = list(cfg.ranks) if cfg.ranks else list(range(1, cfg.neighbours + 1))
    pairs = neighbour_pairs(torch.from_numpy(sampler.embed(sentences)), ranks, known, cfg.random_partners, cfg.seed)
    first, second = [sentences[i] for i, _ in pairs], [sentences[j] for _, j in pairs]
    if cfg.gold_pairs:
        first, second = [*gold.sentence1, *first], [*gold.sentence2, *second]
    models = [first_teacher, *(load(t, **settings) for t in teachers[1:])]
    scores = sum(m.score(first, second) for m in models) / len(models)

    low, high = cfg.data.score_range
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, cfg.overwrite) as handle:
        for n, (a, b, s) in enumerate(zip(first, second, scores)):
            handle.write(f"silver\tteacher\t-\t{n}\t{low + float(s) * (high - low):.4f}\t{a}\t{b}\n")
    gold_note = f"the {len(gold)} gold pairs relabelled" if cfg.gold_pairs else "gold pairs and repeats left out"
    print(f"wrote {len(first)} pairs labelled by {' + '.join(teachers)} ({len(sentences)} training sentences; neighbour ranks {ranks}, {cfg.random_partners} random partners each; {gold_note}) to {out}")
    return out
