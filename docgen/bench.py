"""Tables from the recorded benchmark files (experiments/bench/*.txt): each file is what a script
printed, its command and host lines, and a JSON line with the figures; every table says which file,
command, host and git commit it comes from."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from docgen import ROOT, renderer

BENCH = ROOT / "experiments" / "bench"
_COMMIT = re.compile(r"\bgit (?:commit )?([0-9a-f]{7,40}(?:\+dirty)?)")
_HOST_FLAGS = ("amx_bf16", "avx512_vnni", "avx512f", "avx2")


@dataclass(frozen=True)
class Bench:
    name: str  # the file's name without .txt
    command: str
    host: str
    commit: str
    records: tuple[dict[str, Any], ...] = field(default=())

    @property
    def record(self) -> dict[str, Any]:
        """The file's (last) JSON line."""
        if not self.records:
            raise ValueError(f"experiments/bench/{self.name}.txt has no JSON line")
        return self.records[-1]


@cache
def read(name: str) -> Bench:
    """A bench file by name (experiments/bench/NAME.txt)."""
    path = BENCH / f"{name.removesuffix('.txt')}.txt"
    lines = path.read_text().splitlines()
    records = tuple(json.loads(line) for line in lines if line.startswith("{"))
    header = [line for line in lines if not line.startswith("{")]
    command = next((line.removeprefix("command: ") for line in header if line.startswith(("python ", "command: ", "/"))), "")
    host = next((line.split(":", 1)[1].strip() for line in header if line.startswith("hardware:")), "")
    host = host or next((line.split(":", 1)[1].strip() for line in header if line.startswith("host:")), "")
    if not host and records and isinstance(records[-1].get("host"), dict):
        h = records[-1]["host"]
        host = f"{h.get('cpu') or h.get('model')} [{' '.join(h.get('flags', []))}]"
    commit = next((m[1] for line in header if (m := _COMMIT.search(line))), "")
    commit = commit or next((str(r["commit"]) for r in records if "commit" in r), "")
    return Bench(path.stem, command, host, commit, records)


def names(pattern: str = "*") -> list[str]:
    return sorted(p.stem for p in BENCH.glob(f"{pattern}.txt"))


def host_kind(bench: Bench) -> str:
    """AMX, VNNI (no AMX), AVX2 ..., from the host line (emulated hosts say so in the JSON)."""
    host = bench.records[-1].get("host", {}) if bench.records else {}
    emulated = host.get("as_host") if isinstance(host, dict) else None
    if emulated:
        return f"{emulated.upper()} (emulated on an AMX host)"
    if "amx_bf16" in bench.host:
        return "AMX"
    if isinstance(host, dict) and host.get("amx"):
        return "AMX"
    if "[" not in bench.host:
        return "AVX-512, no AMX"  # the earliest files name no flags; that host had AVX-512
    flags = bench.host.split("[", 1)[1].split("]", 1)[0].split()
    if "avx2" in flags and not any(f.startswith(("avx512", "avx_vnni", "amx")) for f in flags):
        return "AVX2 only (no AVX-512, VNNI or AMX)"
    return "no AMX"


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def source(bench: Bench) -> str:
    parts = [f"`experiments/bench/{bench.name}.txt`"]
    if bench.command:
        parts.append(f"`{bench.command}`")
    if bench.host:
        parts.append(f"host: {bench.host}")
    parts.append(f"git {bench.commit}" if bench.commit else "commit not recorded")
    return "Source: " + "; ".join(parts) + "."


def _cell(value: Any) -> str:
    return number(value).replace("|", "\\|") if value is not None else ""


def cases_table(record: dict[str, Any]) -> str:
    """A table of the record's cases (values that are dicts with an `ours` figure), one column per field."""
    cases = {k: v for k, v in record.items() if isinstance(v, dict) and "ours" in v and not isinstance(v["ours"], dict)}
    columns: list[str] = []
    for value in cases.values():
        columns += [k for k, v in value.items() if k not in columns and not isinstance(v, (dict, list))]
    rows = ["| case | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    rows += [f"| `{case}` | " + " | ".join(_cell(value.get(c)) for c in columns) + " |" for case, value in cases.items()]
    return "\n".join(rows)


def startup_table(record: dict[str, Any]) -> str:
    rows = ["| case | ours median s | ours RSS MiB | peer median s | peer RSS MiB |", "| --- | --- | --- | --- | --- |"]
    for case, value in record["cases"].items():
        ours, peer = value.get("ours", {}), value.get("peer") or {}
        rows.append(f"| `{case}` | {_cell(ours.get('median_wall_s'))} | {_cell(ours.get('median_rss_mib'))} | {_cell(peer.get('median_wall_s'))} | {_cell(peer.get('median_rss_mib'))} |")
    return "\n".join(rows)


def results_table(record: dict[str, Any]) -> str:
    """quant_sensitivity.py's {variant: {spearman, drop, pairs_per_s}}."""
    rows = ["| variant | Spearman | drop | pairs/s |", "| --- | --- | --- | --- |"]
    rows += [f"| `{k}` | {_cell(v.get('spearman'))} | {_cell(v.get('drop'))} | {_cell(v.get('pairs_per_s'))} |" for k, v in record["results"].items()]
    return "\n".join(rows)


def scalars_table(record: dict[str, Any]) -> str:
    rows = ["| field | value |", "| --- | --- |"]
    rows += [f"| `{k}` | {_cell(v)} |" for k, v in record.items() if not isinstance(v, (dict, list))]
    return "\n".join(rows)


def table(bench: Bench, record: dict[str, Any] | None = None) -> str:
    record = bench.record if record is None else record
    if "cases" in record and isinstance(record["cases"], dict):
        return startup_table(record)
    if "results" in record and isinstance(record["results"], dict):
        return results_table(record)
    if any(isinstance(v, dict) and "ours" in v for v in record.values()):
        return cases_table(record)
    return scalars_table(record)


@renderer("bench")
def bench_section(*names_or_globs: str) -> str:
    """Every bench file matching the names (globs allowed): its source line and its table(s)."""
    out = []
    for pattern in names_or_globs:
        for name in names(pattern) or [pattern]:
            bench = read(name)
            if not bench.records:
                text = (BENCH / f"{name}.txt").read_text().rstrip()
                out.append(f"{source(bench)}\n\n```text\n{text}\n```")
                continue
            tables = "\n\n".join(table(bench, r) for r in bench.records)
            out.append(f"{source(bench)} Host kind: {host_kind(bench)}.\n\n{tables}")
    return "\n\n".join(out)


def lookup(record: Any, path: str) -> Any:
    for part in path.split("."):
        record = record[int(part)] if isinstance(record, list) else record[part]
    return record


@renderer("value")
def value(name: str, path: str, fmt: str = "") -> str:
    """One figure of a bench file's JSON line, e.g. `value mine-10k ratio .2f`."""
    found = lookup(read(name).record, path)
    return format(found, fmt) if fmt else number(found)


@renderer("tests")
def tests_run(pattern: str = "tests-amx-ci-*") -> str:
    """The newest recorded CI run (by commit order of the files named tests-...-<commit>.txt):
    how many tests passed, pytest's minutes, and the whole run's."""
    name = max(names(pattern), key=_order)
    text = (BENCH / f"{name}.txt").read_text()
    passed = re.search(r"(\d+) passed in ([\d.]+)s", text)
    real = re.search(r"real\s+(\d+)m([\d.]+)s", text)
    total = f", {int(real[1]) + float(real[2]) / 60:.1f} min with set-up" if real else ""
    return f"{passed[1]} tests, {float(passed[2]) / 60:.1f} min of pytest{total} (`experiments/bench/{name}.txt`)"


def _order(name: str) -> int:
    """Position of the file's commit in this checkout's history (newer is larger; unknown = -1)."""
    from docgen.changelog import commits

    short = name.rsplit("-", 1)[-1]
    history = [c.sha for c in commits()]
    found = [i for i, sha in enumerate(history) if sha.startswith(short)]
    return len(history) - found[0] if found else -1
