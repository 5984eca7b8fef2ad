"""Streaming reader and atomic writer for user tables (CSV, TSV, JSONL) with a header.

Rows are numbered as a spreadsheet shows them: the header is row 1 of a CSV/TSV, and a
JSONL row is its line number.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
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


def listed(names: list[str], limit: int = 20) -> str:
    """Column names for a message, cut after `limit` (a header can have thousands)."""
    shown = ", ".join(repr(n[:80]) for n in names[:limit])
    return f"[{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}]"


def require_columns(path: str | Path, found: Sequence[str], names: Sequence[str]) -> None:
    """Fail listing the columns found when a needed column is missing (any reader's table)."""
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(path, f"missing column(s) {listed(missing)}; columns found: {listed(list(found))}")


_spool: tempfile.TemporaryDirectory | None = None


def _spooled(path: Path) -> Path:
    """A pipe, FIFO or device (`input=/dev/stdin`, `<(cmd)`) can be read once only: copy it to a
    private temporary file, read from there as often as needed, removed at exit."""
    global _spool
    if _spool is None:
        _spool = tempfile.TemporaryDirectory(prefix="sts-input-")
    fd, name = tempfile.mkstemp(dir=_spool.name, suffix=path.suffix)
    with open(path, "rb") as source, os.fdopen(fd, "wb") as copy:
        head = source.read(65536)
        if b"\x00" in head:
            raise InputError(path, "is a binary stream, not text (CSV, TSV or JSONL expected)")
        copy.write(head)
        shutil.copyfileobj(source, copy, 1 << 20)
    return Path(name)


def check_text_file(path: str | Path) -> Path:
    """Fail early, with the path in the message, on files that cannot be a table; returns the
    regular file to read (the file itself, or a one-time copy of a pipe or device)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    source = path if path.is_file() else _spooled(path)
    try:
        with open(source, "rb") as f:
            head = f.read(65536)
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None
    if not head.strip():
        raise InputError(path, "file is empty")
    if b"\x00" in head:
        raise InputError(path, "is a binary file, not text (CSV, TSV or JSONL expected)")
    return source


def check_utf8(path: Path, row: int, value: str, column: str) -> None:
    if _NOT_UTF8.search(value):
        raise InputError(path, f"column {column!r} contains bytes that are not UTF-8", row)


def open_text(path: Path):
    """UTF-8 with an optional byte-order mark; undecodable bytes are kept as surrogates so
    the row that holds them can be named."""
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


MAX_COLUMNS = 10_000


class Table:
    """Streams the rows of a CSV/TSV/JSONL file as dicts, checking shape, quoting and encoding.

    `path` names the file in messages; `source` is what is read (a copy, for a pipe)."""

    def __init__(self, path: str | Path, fmt: str | None = None) -> None:
        self.path = Path(path)
        self.source = check_text_file(self.path)
        self.format = table_format(self.path, fmt)
        self.columns = self._header()

    def _header(self) -> list[str]:
        with open_text(self.source) as f:
            if self.format == "jsonl":
                for number, line in enumerate(f, 1):
                    if line.strip():
                        header = list(self._json(line, number).keys())
                        break
                else:
                    raise InputError(self.path, "file is empty")
            else:
                header = next(self._records(f), (1, []))[1]
        if len(header) > MAX_COLUMNS:
            raise InputError(self.path, f"the header has {len(header)} columns; at most {MAX_COLUMNS} are supported", 1)
        for name in header:
            check_utf8(self.path, 1, name, "header")
        if not any(h.strip() for h in header):
            raise InputError(self.path, "the header row is empty", 1)
        duplicates = sorted(name for name, n in Counter(header).items() if n > 1)
        if duplicates:
            raise InputError(self.path, f"duplicate column names {listed(duplicates)}", 1)
        return header

    @property
    def _delimiter(self) -> str:
        return "\t" if self.format == "tsv" else ","

    def _records(self, handle: Any) -> Iterator[tuple[int, list[str]]]:
        """(record number, fields), strictly parsed: a quote that never closes (which would swallow
        every later row into one field) or text after a closing quote is an error, not data loss."""
        reader = csv.reader(handle, delimiter=self._delimiter, strict=True)
        number = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise InputError(self.path, f"malformed {self.format.upper()} ({e}): a quoted field is not closed, or text follows its closing quote", number + 1) from None
            number += 1
            yield number, fields

    def _json(self, line: str, number: int) -> dict[str, Any]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(self.path, f"not valid JSON ({e.msg} at column {e.colno})", number) from None
        except RecursionError:
            raise InputError(self.path, "not valid JSON (nested too deeply)", number) from None
        if not isinstance(record, dict):
            raise InputError(self.path, "a JSONL line must be an object", number)
        return record

    def require(self, *names: str) -> None:
        """Fail listing the columns found when a needed column is missing."""
        require_columns(self.path, self.columns, names)

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(row number, record) for every data row; raises on ragged rows and bad bytes."""
        count = 0
        with open_text(self.source) as f:
            if self.format == "jsonl":
                keys = set(self.columns)
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    record = self._json(line, number)
                    if set(record) != keys:
                        raise InputError(self.path, f"keys {listed(sorted(record))} differ from the first line's {listed(sorted(self.columns))}", number)
                    for key, value in record.items():
                        if isinstance(value, str):
                            check_utf8(self.path, number, value, key)
                    count += 1
                    yield number, record
            else:
                records = self._records(f)
                next(records, None)
                width = len(self.columns)
                for number, fields in records:
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


def writable_dir(path: Path) -> Path:
    """Create `path` if needed and prove a file can be written there (OSError if not)."""
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write-test-{os.getpid()}-{threading.get_ident()}"
    probe.write_bytes(b"")
    probe.unlink()
    return path


def _given_paths(value: Any) -> list[Path]:
    """The local paths an option names: one, several (a list), or none (null, empty)."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [p for item in value for p in _given_paths(item)]


def check_apart(outputs: Mapping[str, Any], inputs: Mapping[str, Any], own: Sequence[Path] = ()) -> None:
    """Refuse, before any work, an output (option name -> path) that is an existing input (by any
    spelling, symlink or hard link), contains one, or lies inside one: writing it, or replacing
    the folder, could destroy what the command reads. Inputs inside `own` (folders of the command's
    own earlier work, e.g. a recipe's stages) are not the user's and are allowed."""
    mine = [folder.resolve() for folder in own]
    for out_name, out in outputs.items():
        for output in _given_paths(out):
            target = output.resolve()
            for in_name, value in inputs.items():
                for given in _given_paths(value):
                    if not given.exists():
                        continue
                    source = given.resolve()
                    if any(source == folder or folder in source.parents for folder in mine):
                        continue
                    if source == target or (output.exists() and os.path.samefile(output, given)):
                        relation = "is"
                    elif target in source.parents:
                        relation = "contains"
                    elif source in target.parents:
                        relation = "lies inside"
                    else:
                        continue
                    raise STSError(f"{out_name}={output}: refusing to write over the input {in_name}={given} (the output {relation} it); choose another {out_name}=")


def marker_content(path: Path) -> dict[str, Any] | None:
    """The JSON object a command wrote into its output as a marker, or None when `path` is
    missing or holds anything else: a marker is trusted by its content, not its name."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return content if isinstance(content, dict) else None


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Any]:
    """Open a temporary file beside `path`, moved onto it only on success; an error or
    SIGINT/SIGTERM removes it, so no partial file ever appears under the output name. Without
    `overwrite` the move is exclusive (a hard link, which fails if the name exists), so two
    processes racing for one output cannot both succeed and silently lose one result."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            yield handle
        if overwrite:
            os.replace(tmp, path)
        else:
            _place_exclusively(tmp, path)
    except OSError as e:
        if e.filename not in (None, str(tmp), str(path)):
            raise  # about another file (the input), not the output
        raise STSError(f"{path}: cannot write the output ({e.strerror or e})") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only or vanished directory: there is nothing to remove
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _place_exclusively(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        if path.is_symlink() and not path.exists():
            raise STSError(f"{path}: is a symlink to {os.readlink(path)}, which does not exist; nothing was written through it (remove the link, or pass overwrite=true to replace it)") from None
        raise STSError(f"{path}: appeared while this ran (another process writing the same output?); nothing was written over it, pass overwrite=true to replace it") from None
    except OSError:  # a file system without hard links: check, then rename (a narrow race remains)
        if path.exists():
            raise STSError(f"{path}: already exists; pass overwrite=true to replace it") from None
        os.replace(tmp, path)


def count_lines(path: str) -> int:
    """Fast upper bound on the rows of a file, for a progress bar's total."""
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def check_output(inputs: Mapping[str, Any], output: Path, overwrite: bool) -> str:
    """Refuse, before any work, an output that is an input (by any spelling, symlink or hard
    link: `inputs` maps option names to what they name) or lies inside one, a directory, an
    existing file without overwrite=true, or a format we cannot write; returns the output's format."""
    check_apart({"output": output}, inputs)
    if output.is_dir():
        raise STSError(f"{output}: output is a directory")
    if output.exists() and not output.is_file():
        raise STSError(f"{output}: output exists and is not a regular file (a device or pipe); choose a file name")
    if output.exists() and not overwrite:
        raise STSError(f"{output}: already exists; pass overwrite=true to replace it")
    if not output.parent.is_dir():
        raise STSError(f"{output.parent}: output directory does not exist")
    return table_format(output)
