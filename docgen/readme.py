"""README.md's generated parts: `python -m docgen.readme` renders each `<!-- gen:... -->` block in
place; `--check` exits 1 when the file differs from what it would write (tests/docs runs it)."""
from __future__ import annotations

import sys

from docgen import ROOT, expand

README = ROOT / "README.md"


def rendered() -> str:
    return expand(README.read_text(), keep_markers=True)


def main(argv: list[str]) -> int:
    text = rendered()
    if "--check" in argv:
        if text != README.read_text():
            print("README.md is stale: run python -m docgen.readme", file=sys.stderr)
            return 1
        return 0
    README.write_text(text)
    print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
