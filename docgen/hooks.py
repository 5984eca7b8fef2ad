"""mkdocs hooks (mkdocs.yml `hooks:`): the generated figures join the site's files, and every
`<!-- gen:... -->` directive of a page is replaced by its rendering before the page is built."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # mkdocs loads this file by path: docgen and sts from this checkout

from mkdocs.structure.files import File, Files  # noqa: E402

from docgen import expand  # noqa: E402
from docgen.plots import FIGURES  # noqa: E402


def on_files(files: Files, config: Any) -> Files:
    for uri, draw in FIGURES.items():
        files.append(File.generated(config, uri, content=draw()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return expand(markdown)
