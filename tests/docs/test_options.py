"""Every option of every command is documented (a comment above its key in the YAML configs),
every command has its page, and every config file says what it is for."""
from __future__ import annotations

import pytest

from docgen import ROOT, options
from sts.commands.main import COMMANDS
from sts.config import CONFIG_DIR

# the references compose each command's config once per group option (cached per process): one process
pytestmark = pytest.mark.xdist_group("docs-options")


def test_every_option_has_a_meaning() -> None:
    assert options.undocumented() == []


def test_every_command_has_a_page_with_its_options() -> None:
    assert set(COMMANDS) <= set(options.COMMANDS)
    for command in options.COMMANDS:
        page = (ROOT / "docs" / "commands" / f"{command}.md").read_text()
        assert f"<!-- gen:options {command} -->" in page, command


def test_every_group_option_and_recipe_has_a_header_comment() -> None:
    files = [p for p in CONFIG_DIR.rglob("*.yaml") if p.parent != CONFIG_DIR and "hydra" not in p.relative_to(CONFIG_DIR).parts]
    assert [str(p.relative_to(CONFIG_DIR)) for p in files if not options.header(p)] == []


def test_a_shared_comment_documents_only_the_keys_it_names(tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("# one for max_batch_size and batch_timeout\nmax_batch_size: 64\nbatch_timeout: 0.005\nport: 8000\n\nhost: x\n")
    assert options.comments(config) == {"max_batch_size": "one for max_batch_size and batch_timeout", "batch_timeout": "one for max_batch_size and batch_timeout"}


def test_the_table_shows_default_and_meaning() -> None:
    table = options.options_table("predict")
    assert "| `threshold` | `null` | lbl = score >= threshold; null = the threshold chosen on dev and stored in the checkpoint |" in table
    assert "| `model.both_orders` |" in options.options_table("train") and "(with `model=cross_encoder`)" in options.options_table("train")
