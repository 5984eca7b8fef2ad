"""The documentation's generated parts: option references from the Hydra configs, tables and
figures from the recorded results and benchmark files, the changelog from git. Pages and the README
hold directives `<!-- gen:NAME ARGS -->`; `expand` replaces each with what NAME renders, so nothing
generated is typed by hand (mkdocs runs it in docgen/hooks.py; `python -m docgen.readme` for README)."""
from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# <!-- gen:NAME ARGS --> alone, or <!-- gen:NAME ARGS -->...<!-- /gen --> around an earlier rendering
DIRECTIVE = re.compile(r"<!-- gen:(?P<name>[a-z][a-z-]*)(?P<args>[^>]*?)-->(?:(?P<body>.*?)<!-- /gen -->)?", re.S)

RENDERERS: dict[str, Callable[..., str]] = {}


def renderer(name: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register a function as the renderer of `<!-- gen:NAME ... -->` (its args, split as a shell would)."""

    def register(fn: Callable[..., str]) -> Callable[..., str]:
        RENDERERS[name] = fn
        return fn

    return register


def render(name: str, args: str = "") -> str:
    _load()
    if name not in RENDERERS:
        raise KeyError(f"unknown directive gen:{name}; known: {', '.join(sorted(RENDERERS))}")
    return RENDERERS[name](*shlex.split(args))


def expand(markdown: str, keep_markers: bool = False) -> str:
    """Every directive replaced by its rendering; with keep_markers (README), the rendering stays
    between the directive and `<!-- /gen -->`, so the next run replaces it again."""

    def one(m: re.Match[str]) -> str:
        text = render(m["name"], m["args"]).strip("\n")
        if keep_markers:
            return f"<!-- gen:{m['name']}{m['args']}-->\n{text}\n<!-- /gen -->"
        return text

    return DIRECTIVE.sub(one, markdown)


def _load() -> None:
    from docgen import bench, changelog, options, results  # noqa: F401  (each registers its renderers)
