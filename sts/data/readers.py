"""Readers that turn a data file into validated sentence pairs with gold scores in 0-1.

One function per raw format (STS Benchmark, SICK, MSRP) plus `table` for the user's own
CSV/TSV/JSONL files. Every problem is an `InputError` naming file, row and problem.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sts.data.tables import SUFFIX_FORMATS, Table, check_text_file, check_utf8, listed, open_text, require_columns
from sts.errors import InputError


@dataclass
class Pairs:
    """Sentence pairs with gold in 0-1 (graded, normalised) or {0, 1} (binary labels)."""

    sentence1: list[str]
    sentence2: list[str]
    gold: np.ndarray
    binary: bool
    meta: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sentence1)

    def subset(self, index: Sequence[int]) -> Pairs:
        return Pairs(
            [self.sentence1[i] for i in index],
            [self.sentence2[i] for i in index],
            self.gold[np.asarray(index, dtype=int)],
            self.binary,
            {k: [v[i] for i in index] for k, v in self.meta.items()},
        )

    def with_reversed(self) -> Pairs:
        """Every pair followed by its reverse (s2, s1), same gold: twice the rows."""
        return Pairs(
            self.sentence1 + self.sentence2,
            self.sentence2 + self.sentence1,
            np.concatenate([self.gold, self.gold]),
            self.binary,
            {k: v + v for k, v in self.meta.items()},
        )


def check_sentence(path: str | Path, row: int | None, value: object, column: str) -> str:
    """A sentence must be non-empty text; NaN/null and blanks are errors, not silently skipped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InputError(path, f"{column} is missing (null/NaN)", row)
    if not isinstance(value, str):
        raise InputError(path, f"{column} is not text: {value!r}", row)
    if not value.strip():
        raise InputError(path, f"{column} is empty", row)
    if value.strip().lower() in ("nan", "null", "none"):
        raise InputError(path, f"{column} is missing ({value.strip()!r})", row)
    check_utf8(path, row, value, column)
    return value


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def sentence_columns(path: str | Path, found: Sequence[str], sample: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> tuple[str, str]:
    """The configured two columns, or the two text (non-numeric) columns of a `sample` of rows:
    predict.py's rule, whichever engine reads the table."""
    if columns:
        if len(columns) != 2:
            raise InputError(path, f"columns= needs exactly two names, got {list(columns)}")
        require_columns(path, found, columns)
        return columns[0], columns[1]
    text = [c for c in found if not all(_is_number(r[c]) for r in sample)]
    if len(text) != 2:
        raise InputError(path, f"cannot tell which two columns hold the sentences (text columns: {listed(text)}; columns found: {listed(list(found))}); set columns=[first,second]")
    return text[0], text[1]


def checked_pairs(table: Table, first: str, second: str) -> Iterator[tuple[int, dict[str, Any], str, str]]:
    """(row, record, sentence1, sentence2) of every row, each sentence checked: predict.py's
    reading of a table, so every engine names the same first bad row."""
    for row, record in table.rows():
        yield row, record, check_sentence(table.path, row, record[first], first), check_sentence(table.path, row, record[second], second)


def parse_score(path: Path, row: int, value: object, score_range: Sequence[float], column: str = "score") -> float:
    """A graded score inside the configured range, normalised to 0-1."""
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(path, f"{column} {value!r} is not a number", row) from None
    if math.isnan(score):
        raise InputError(path, f"{column} is NaN", row)
    lo, hi = float(score_range[0]), float(score_range[1])
    if not lo <= score <= hi:
        raise InputError(path, f"{column} {score:g} is outside the range [{lo:g}, {hi:g}] (data.score_range)", row)
    return (score - lo) / (hi - lo)


def parse_label(path: Path, row: int, value: object, column: str = "label") -> float:
    """A binary label: 0 or 1 (as number or text)."""
    text = str(value).strip()
    if text in ("0", "1", "0.0", "1.0") and not isinstance(value, bool):
        return float(text)
    raise InputError(path, f"{column} {value!r} is not 0 or 1", row)


def _raw_rows(path: Path, min_fields: int, header_first: str | None) -> Iterator[tuple[int, list[str]]]:
    """Tab-separated lines read with quoting disabled (STS-B, SICK and MSRP have bare quotes)."""
    with open_text(check_text_file(path)) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if number == 1 and header_first is not None and fields[0].strip() == header_first:
                continue
            if len(fields) < min_fields:
                raise InputError(path, f"has {len(fields)} tab-separated fields, expected at least {min_fields}", number)
            yield number, fields


def read_stsb(path: Path, score_range: Sequence[float]) -> Pairs:
    """STS Benchmark: genre, file, year, id, score, sentence1, sentence2[, source, licence]."""
    s1, s2, gold, genre = [], [], [], []
    for row, f in _raw_rows(path, 7, None):
        s1.append(check_sentence(path, row, f[5], "sentence1"))
        s2.append(check_sentence(path, row, f[6], "sentence2"))
        gold.append(parse_score(path, row, f[4], score_range))
        genre.append(f[0].removeprefix("main-"))
    return Pairs(s1, s2, np.asarray(gold, dtype=np.float32), False, {"genre": genre})


def read_sick(path: Path, score_range: Sequence[float]) -> Pairs:
    """SICK: pair id, sentence A, sentence B, relatedness (1-5), entailment label."""
    s1, s2, gold, entailment = [], [], [], []
    for row, f in _raw_rows(path, 4, "pair_ID"):
        s1.append(check_sentence(path, row, f[1], "sentence_A"))
        s2.append(check_sentence(path, row, f[2], "sentence_B"))
        gold.append(parse_score(path, row, f[3], score_range, "relatedness"))
        entailment.append(f[4] if len(f) > 4 else "")
    return Pairs(s1, s2, np.asarray(gold, dtype=np.float32), False, {"entailment": entailment})


def read_msrp(path: Path) -> Pairs:
    """MSRP: quality (0/1), id1, id2, string1, string2; UTF-8 with a byte-order mark."""
    s1, s2, gold = [], [], []
    for row, f in _raw_rows(path, 5, "Quality"):
        s1.append(check_sentence(path, row, f[3], "string1"))
        s2.append(check_sentence(path, row, f[4], "string2"))
        gold.append(parse_label(path, row, f[0], "quality"))
    return Pairs(s1, s2, np.asarray(gold, dtype=np.float32), True)


def read_table(path: Path, columns: dict[str, str | None], score_range: Sequence[float] | None, fmt: str | None = None) -> Pairs:
    """The user's CSV/TSV/JSONL with named columns; graded when the `score` column exists
    (normalised with `score_range`), else binary from the `label` column."""
    table = Table(path, fmt)
    c1, c2 = columns["sentence1"], columns["sentence2"]
    score_col, label_col = columns.get("score"), columns.get("label")
    binary = not (score_col and score_col in table.columns)
    gold_col = label_col if binary else score_col
    if not gold_col:
        raise InputError(path, "no gold column configured: set data.columns.score or data.columns.label")
    table.require(c1, c2, gold_col)
    if not binary and score_range is None:
        raise InputError(path, f"column {score_col!r} holds graded scores: set data.score_range")
    s1, s2, gold = [], [], []
    for row, record in table.rows():
        s1.append(check_sentence(table.path, row, record[c1], c1))
        s2.append(check_sentence(table.path, row, record[c2], c2))
        value = record[gold_col]
        gold.append(parse_label(table.path, row, value, gold_col) if binary else parse_score(table.path, row, value, score_range, gold_col))
    return Pairs(s1, s2, np.asarray(gold, dtype=np.float32), binary)


def read_pairs(
    paths: str | Path | Sequence[str | Path],
    format: str = "table",
    score_range: Sequence[float] | None = (0.0, 5.0),
    columns: dict[str, str | None] | None = None,
) -> Pairs:
    """Read one file or concatenate several of the same format."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if score_range is not None:  # plain floats, read once: indexing a config's list per row was seconds over a 59k-pair file
        score_range = (float(score_range[0]), float(score_range[1]))
    parts = []
    for p in paths:
        p = Path(p)
        if format == "stsb":
            parts.append(read_stsb(p, score_range or (0.0, 5.0)))
        elif format == "sick":
            parts.append(read_sick(p, score_range or (1.0, 5.0)))
        elif format == "msrp":
            parts.append(read_msrp(p))
        elif format in ("table", "csv", "tsv", "jsonl"):
            cols = {"sentence1": "sentence1", "sentence2": "sentence2", "score": "score", "label": "label"} | dict(columns or {})
            parts.append(read_table(p, cols, score_range, None if format == "table" else format))
        else:
            raise InputError(p, f"unknown data format {format!r} (stsb, sick, msrp, table, csv, tsv, jsonl)")
    if len({part.binary for part in parts}) > 1:
        raise InputError(paths[0], "files mix graded scores and binary labels")
    meta_keys = set.intersection(*(set(part.meta) for part in parts))
    return Pairs(
        [s for part in parts for s in part.sentence1],
        [s for part in parts for s in part.sentence2],
        np.concatenate([part.gold for part in parts]),
        parts[0].binary,
        {k: [v for part in parts for v in part.meta[k]] for k in meta_keys},
    )


SPLITS = ("train", "val", "test")


def read_splits(
    paths: Mapping[str, str | Sequence[str] | None],
    fmt: str = "table",
    score_range: Sequence[float] | None = (0.0, 5.0),
    columns: dict[str, str | None] | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, Pairs]:
    """Every split `paths` names, read and validated. Without a val file, `val_fraction` > 0
    carves dev out of train (a fixed permutation of `seed`): the split training selects on,
    which evaluate.py reads the same way."""
    pairs = {split: read_pairs(paths[split], fmt, score_range, columns) for split in SPLITS if paths.get(split)}
    if "val" not in pairs and val_fraction > 0 and "train" in pairs:
        order = np.random.default_rng(seed).permutation(len(pairs["train"]))
        cut = int(round(len(order) * val_fraction))
        pairs["val"] = pairs["train"].subset(np.sort(order[:cut]))
        pairs["train"] = pairs["train"].subset(np.sort(order[cut:]))
    return pairs


def read_sentences(path: Path, fmt: str | None, column: str | None) -> list[str]:
    """Sentences of a text file (one per line; a blank line is an error, so row i stays line i)
    or of one column of a CSV/TSV/JSONL table."""
    fmt = fmt or SUFFIX_FORMATS.get(path.suffix.lower(), "text")
    if fmt == "text":
        with open_text(check_text_file(path)) as f:
            return [check_sentence(path, row, line.rstrip("\r\n"), "line") for row, line in enumerate(f, 1)]
    table = Table(path, fmt)
    if column is None:
        if len(table.columns) != 1:
            raise InputError(path, f"set column=NAME to say which column holds the sentences (columns found: {table.columns})")
        column = table.columns[0]
    table.require(column)
    return [check_sentence(table.path, row, record[column], column) for row, record in table.rows()]
