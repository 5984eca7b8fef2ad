"""The changelog's list of changes: this checkout's git history, grouped by day."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache

from docgen import ROOT, renderer


@dataclass(frozen=True)
class Commit:
    sha: str
    day: str
    subject: str


@cache
def commits() -> tuple[Commit, ...]:
    """Newest first; empty where there is no git history (an unpacked archive)."""
    try:
        out = subprocess.run(["git", "log", "--format=%H%x09%ad%x09%s", "--date=short"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ()
    return tuple(Commit(*line.split("\t", 2)) for line in out.splitlines() if line.count("\t") >= 2)


@renderer("changelog")
def changelog() -> str:
    if not commits():
        return "*This copy has no git history, so the list of changes is empty; build from a clone.*"
    out: list[str] = []
    day = ""
    for c in commits():
        if c.day != day:
            day = c.day
            out.append(f"\n### {day}\n")
        out.append(f"- `{c.sha[:7]}` {c.subject.replace('<', '&lt;')}")
    return "\n".join(out).strip()
