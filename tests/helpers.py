"""Helpers shared by test modules: running an entry point as a user would (and interrupting it), a hostile pickle,
and the table of bad input files every reader must refuse in one line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def run_cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def foreground() -> None:
    """preexec_fn for a child that a test interrupts as Ctrl-C would: a shell's background job (a
    CI runner under nohup ... &) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Evil:
    """Unpickling it opens `path` for writing: what a hostile checkpoint would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


DIRECTORY = object()
HEADER = "sentence1,sentence2,GOLD\n"
JSON_FIRST = '{"sentence1": "a", "sentence2": "b", "GOLD": 1}\n'

# (case, file name, content (GOLD stands for the third column), message, row or None); shared
# by predict (third column `id`) and training data files (third column `score`).
BAD_TABLES = [
    ("missing file", "in.csv", None, "file not found", None),
    ("directory", "in.csv", DIRECTORY, "is a directory, not a file", None),
    ("binary file", "in.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "is a binary file", None),
    ("empty file", "in.csv", "", "file is empty", None),
    ("blank lines only", "in.csv", "\n  \n", "file is empty", None),
    ("header only", "in.csv", HEADER, "no data rows (header only)", None),
    ("misspelt column", "in.csv", "sentence1,sentence_2,GOLD\na,b,1\n", "missing column(s) ['sentence2']; columns found: ['sentence1', 'sentence_2', 'GOLD']", None),
    ("too few fields", "in.csv", HEADER + "a,b,1\nc,d\n", "has 2 fields, the header has 3", 3),
    ("too many fields", "in.csv", HEADER + "a,b,1,x\n", "has 4 fields, the header has 3", 2),
    ("ragged tsv", "in.tsv", "sentence1\tsentence2\tGOLD\na\tb\n", "has 2 fields, the header has 3", 2),
    ("empty sentence", "in.csv", HEADER + "a,b,1\n,d,2\n", "sentence1 is empty", 3),
    ("whitespace-only sentence", "in.csv", HEADER + "a, \t ,1\n", "sentence2 is empty", 2),
    ("NaN sentence", "in.csv", HEADER + "a,NaN,1\n", "sentence2 is missing ('NaN')", 2),
    ("row after a multi-line quoted field", "in.csv", HEADER + '"a\nb",c,1\nd,,2\n', "sentence2 is empty", 3),
    ("bytes not UTF-8", "in.csv", (HEADER + "a,b,1\n").encode() + b"caf\xe9,d,2\n", "column 'sentence1' contains bytes that are not UTF-8", 3),
    ("header not UTF-8", "in.csv", b"sentence1,sentence2\xff,GOLD\na,b,1\n", "column 'header' contains bytes that are not UTF-8", 1),
    ("jsonl bad line", "in.jsonl", JSON_FIRST + '\n{"sentence1": "c", "sentence2": \n', "not valid JSON", 3),
    ("jsonl line not an object", "in.jsonl", JSON_FIRST + "[1, 2]\n", "a JSONL line must be an object", 2),
    ("jsonl missing key", "in.jsonl", JSON_FIRST + '{"sentence1": "c", "GOLD": 1}\n', "differ from the first line's", 2),
    ("jsonl null sentence", "in.jsonl", '{"sentence1": null, "sentence2": "b", "GOLD": 1}\n', "sentence1 is missing (null/NaN)", 1),
    ("jsonl NaN sentence", "in.jsonl", '{"sentence1": "a", "sentence2": NaN, "GOLD": 1}\n', "sentence2 is missing (null/NaN)", 1),
    ("jsonl number as sentence", "in.jsonl", '{"sentence1": 5, "sentence2": "b", "GOLD": 1}\n', "sentence1 is not text", 1),
]


def write_case(folder: Path, case: tuple, gold: str) -> Path:
    """Create the case's input file in `folder` with `gold` as the third column's name."""
    _, name, content, _, _ = case
    path = folder / name
    if content is DIRECTORY:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content.replace(b"GOLD", gold.encode()))
    elif content is not None:
        path.write_text(content.replace("GOLD", gold), encoding="utf-8")
    return path


def assert_one_line_error(stderr: str, path: Path, case: tuple, gold: str) -> None:
    """`error: FILE[: row N]: PROBLEM` and nothing else."""
    _, _, _, message, row = case
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    where = f"{path}: row {row}: " if row else f"{path}: "
    assert lines[0].startswith(f"error: {where}") and message.replace("GOLD", gold) in lines[0], lines[0]


S1 = ["A man is playing a guitar.", "A cat sleeps.", "Stocks fell sharply today."]
S2 = ["A man plays guitar.", "A dog runs in the park.", "Markets dropped."]


def tiny_model(cls, tiny_encoder: str, **kw):
    """A bi- or cross-encoder (`cls`) around the tiny BERT, seeded."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    return cls(encoder=AutoModel.from_pretrained(tiny_encoder), tokenizer=AutoTokenizer.from_pretrained(tiny_encoder), max_length=32, **kw)


def pair_batch(module) -> dict:
    """S1/S2 as the padded batch `module` reads, with gold scores."""
    import torch

    from sts.core.inputs import pad

    enc = module.inputs.pairs(S1, S2)
    batch = {side: pad(e, module.tokenizer.pad_token_id) for side, e in enc.items()}
    batch["gold"] = torch.tensor([0.9, 0.1, 0.7])
    return batch
