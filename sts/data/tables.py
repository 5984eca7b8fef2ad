"""Streaming reader and atomic writer for user tables (CSV, TSV, JSONL) with a header.

Rows are numbered as a spreadsheet shows them: the header is row 1 of a CSV/TSV, and a
JSONL row is its line number.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sts.errors import InputError, STSError

SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
csv.field_size_limit(sys.maxsize)


def table_format(path: str | Path, fmt: str | None = None) -> str:
    """The table format named by `fmt` or, when None, by the file's suffix."""
    if fmt:
        if fmt not in ("csv", "tsv", "jsonl"):
            raise InputError(path, f"unknown format {fmt!r} (expected csv, tsv or jsonl)")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise InputError(path, f"cannot tell the format from suffix {suffix!r}: use .csv, .tsv or .jsonl or set format=")
    return SUFFIX_FORMATS[suffix]


def check_text_file(path: str | Path) -> Path:
    """Fail early, with the path in the message, on files that cannot be a table."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    with open(path, "rb") as f:
        head = f.read(65536)
    if not head.strip():
        raise InputError(path, "file is empty")
    if b"\x00" in head:
        raise InputError(path, "is a binary file, not text (CSV, TSV or JSONL expected)")
    return path


def check_utf8(path: Path, row: int, value: str, column: str) -> None:
    if _NOT_UTF8.search(value):
        raise InputError(path, f"column {column!r} contains bytes that are not UTF-8", row)


def open_text(path: Path):
    """UTF-8 with an optional byte-order mark; undecodable bytes are kept as surrogates so
    the row that holds them can be named."""
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


class Table:
    """Streams the rows of a CSV/TSV/JSONL file as dicts, checking shape and encoding."""

    def __init__(self, path: str | Path, fmt: str | None = None) -> None:
        self.path = check_text_file(path)
        self.format = table_format(self.path, fmt)
        self.columns = self._header()

    def _header(self) -> list[str]:
        with open_text(self.path) as f:
            if self.format == "jsonl":
                for number, line in enumerate(f, 1):
                    if line.strip():
                        return list(self._json(line, number).keys())
                raise InputError(self.path, "file is empty")
            header = next(csv.reader(f, delimiter=self._delimiter), [])
        for name in header:
            check_utf8(self.path, 1, name, "header")
        if not any(h.strip() for h in header):
            raise InputError(self.path, "the header row is empty", 1)
        duplicates = sorted({h for h in header if header.count(h) > 1})
        if duplicates:
            raise InputError(self.path, f"duplicate column names {duplicates}", 1)
        return header

    @property
    def _delimiter(self) -> str:
        return "\t" if self.format == "tsv" else ","

    def _json(self, line: str, number: int) -> dict[str, Any]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(self.path, f"not valid JSON ({e.msg} at column {e.colno})", number) from None
        if not isinstance(record, dict):
            raise InputError(self.path, "a JSONL line must be an object", number)
        return record

    def require(self, *names: str) -> None:
        """Fail listing the columns found when a needed column is missing."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise InputError(self.path, f"missing column(s) {missing}; columns found: {self.columns}")

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(row number, record) for every data row; raises on ragged rows and bad bytes."""
        count = 0
        with open_text(self.path) as f:
            if self.format == "jsonl":
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    record = self._json(line, number)
                    if set(record) != set(self.columns):
                        raise InputError(self.path, f"keys {sorted(record)} differ from the first line's {sorted(self.columns)}", number)
                    for key, value in record.items():
                        if isinstance(value, str):
                            check_utf8(self.path, number, value, key)
                    count += 1
                    yield number, record
            else:
                reader = csv.reader(f, delimiter=self._delimiter)
                next(reader, None)
                width = len(self.columns)
                for number, fields in enumerate(reader, 2):
                    if not fields:
                        continue
                    if len(fields) != width:
                        raise InputError(self.path, f"has {len(fields)} fields, the header has {width}", number)
                    for name, value in zip(self.columns, fields):
                        check_utf8(self.path, number, value, name)
                    count += 1
                    yield number, dict(zip(self.columns, fields))
        if count == 0:
            raise InputError(self.path, "no data rows (header only)")


class TableWriter:
    """Writes dict rows as CSV, TSV or JSONL (chosen by the output suffix)."""

    def __init__(self, handle, columns: list[str], fmt: str) -> None:
        self.fmt = fmt
        self.columns = columns
        self.handle = handle
        if fmt != "jsonl":
            delimiter = "\t" if fmt == "tsv" else ","
            self.writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
            # csv quotes a field only for the line terminator's characters, so a lone "\r"
            # would go out bare and split the row when read back: such rows are fully quoted.
            self.quoted = csv.writer(handle, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
            self.writer.writerow(columns)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.fmt == "jsonl":
            self.handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            return
        for row in rows:
            values = [row[c] for c in self.columns]
            (self.quoted if any(isinstance(v, str) and "\r" in v for v in values) else self.writer).writerow(values)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Any]:
    """Open a temporary file beside `path`, renamed onto it only on success; an error or
    SIGINT/SIGTERM removes it, so no partial file ever appears under the output name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    except OSError as e:
        if e.filename not in (None, str(tmp), str(path)):
            raise  # about another file (the input), not the output
        raise STSError(f"{path}: cannot write the output ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)
        if in_main:
            signal.signal(signal.SIGTERM, previous)

