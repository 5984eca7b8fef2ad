"""Plain aligned text tables for terminal summaries."""
from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[object]], title: str | None = None) -> str:
    """First row is the header; numbers right-aligned, text left-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(max(map(len, cells)))]

    def fmt(row: list[str]) -> str:
        out = []
        for i, c in enumerate(row):
            numeric = c.replace(".", "", 1).replace("-", "", 1).isdigit()
            out.append(c.rjust(widths[i]) if numeric else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]]
    return "\n".join(([title] if title else []) + lines)
