import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sts.data.tables import Table, TableWriter, atomic_output
from sts.errors import InputError


def test_bom_and_quoted_newlines_tabs_kept(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_bytes('\ufeffa,b\n"x, ""y""\nz","p\tq"\n'.encode())
    table = Table(f)
    assert table.columns == ["a", "b"]
    assert [r for _, r in table.rows()] == [{"a": 'x, "y"\nz', "b": "p\tq"}]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_text(""), "file is empty"),
        (lambda p: p.write_text("a,b\n"), "no data rows (header only)"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00"), "binary file"),
    ],
)
def test_unusable_files(tmp_path: Path, setup, message: str) -> None:
    f = tmp_path / "in.csv"
    setup(f)
    with pytest.raises(InputError) as e:
        list(Table(f).rows())
    assert str(e.value).startswith(str(f)) and message in str(e.value)


def test_jsonl_bad_line_named(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text('{"a": "x", "b": "y"}\n{"a": "x", "b": \n')
    with pytest.raises(InputError, match="row 2: not valid JSON"):
        list(Table(f).rows())


def test_atomic_output_leaves_nothing_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_output(out) as handle:
            TableWriter(handle, ["a"], "csv").write([{"a": 1}])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_sigterm_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    code = (
        "import time, sys\nfrom sts.data.tables import atomic_output\n"
        f"with atomic_output({str(out)!r}) as h:\n    h.write('partial'); h.flush(); print('ready', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    assert proc.returncode != 0 and not out.exists() and os.listdir(tmp_path) == []
