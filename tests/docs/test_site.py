"""The site builds with `mkdocs build --strict` (every page in the navigation, no broken link, every
directive rendered), the README is short and its generated table is current."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from docgen import ROOT, readme


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    site = tmp_path / "site"
    assert (site / "figures" / "frozen-vs-finetuned.svg").is_file() and (site / "figures" / "speed-per-host.svg").is_file()
    pages = [p.read_text() for p in site.rglob("*.html")]
    assert not [p for p in pages if "<!-- gen:" in p or "fonts.googleapis" in p]
    train = (site / "commands" / "train" / "index.html").read_text()
    assert "model.threshold_objective" in train and "encoder.packed_dropout" in train


def test_readme_is_short_and_its_table_current() -> None:
    assert len(readme.README.read_text().splitlines()) <= 150
    assert readme.rendered() == readme.README.read_text(), "README.md is stale: run python -m docgen.readme"
