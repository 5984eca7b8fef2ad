"""The code examples of README.md and docs/: every `bash` and `python` block, how it is to be run
(the `<!-- example: MODE REASON -->` line before it) and the output it must print (a `text` block
after `<!-- output -->`). tests/docs/test_examples.py runs them."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from docgen import ROOT

LANGUAGES = ("bash", "python")
MODES = ("run", "slow", "cfg", "server", "skip")
_FENCE = re.compile(r"^```(\w*)\s*$")
_TAG = re.compile(r"^<!-- example: (?P<mode>\w+)\s*(?P<reason>.*?)\s*-->$")
_FLOAT = re.compile(r"(-?\d+\.\d+)")


@dataclass(frozen=True)
class Example:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    language: str
    code: str
    mode: str = "run"
    reason: str = ""
    expected: str = ""  # lines the output must contain, in order

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples(page: Path) -> list[Example]:
    lines = page.read_text().splitlines()
    found: list[Example] = []
    tag: re.Match[str] | None = None
    output_next = False
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        fence = _FENCE.match(stripped)
        if not fence:
            if stripped:
                tag = _TAG.match(stripped)
                output_next = stripped == "<!-- output -->"
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = "\n".join(lines[i + 1 : end])
        language = fence[1]
        if output_next and found:
            last = found[-1]
            found[-1] = Example(last.page, last.line, last.language, last.code, last.mode, last.reason, body)
        elif language in LANGUAGES:
            mode, reason = (tag["mode"], tag["reason"]) if tag else ("run", "")
            if mode not in MODES:
                raise ValueError(f"{page}:{i + 1}: unknown example mode {mode!r}; one of {MODES}")
            found.append(Example(str(page.relative_to(ROOT)), i + 1, language, body, mode, reason))
        tag, output_next = None, False
        i = end + 1
    return found


def every() -> list[Example]:
    return [e for page in pages() for e in examples(page)]


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    return math.isclose(x, y, rel_tol=0.01, abs_tol=0.01)


def line_matches(expected: str, actual: str) -> bool:
    """Equal text, numbers with a decimal point within 1% or 0.01 (bf16 and fp32 hosts differ a little)."""
    want, got = _FLOAT.split(expected.strip()), _FLOAT.split(actual.strip())
    if len(want) != len(got):
        return False
    return all(_close(w, g) if k % 2 else " ".join(w.split()) == " ".join(g.split()) for k, (w, g) in enumerate(zip(want, got)))


def missing_output(expected: str, output: str) -> list[str]:
    """The expected lines not found in the output in order ('...' lines match anything)."""
    lines = output.splitlines()
    at, missing = 0, []
    for want in expected.splitlines():
        if want.strip() in ("", "..."):
            continue
        hit = next((k for k in range(at, len(lines)) if line_matches(want, lines[k])), None)
        if hit is None:
            missing.append(want)
        else:
            at = hit + 1
    return missing


def hydra_commands(code: str) -> list[list[str]]:
    """`sts CMD args` / `python CMD.py args` lines of a cfg block, as argument lists (comments and
    line continuations handled by shlex)."""
    import shlex

    joined = re.sub(r"\\\n", " ", code)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        words = [w for w in words if "=" not in w or not re.match(r"^[A-Z_]+=", w)]  # environment assignments
        if not words:
            continue
        if words[0] == "sts":
            out.append(words[1:])
        elif words[0] == "python" and words[1].endswith(".py") and "/" not in words[1]:
            out.append([words[1].removesuffix(".py"), *words[2:]])
        else:
            raise ValueError(f"not an sts command: {line!r}")
    return out
