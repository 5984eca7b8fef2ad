"""experiments/campaign.yaml, the one list of recorded rows: every recorded run is in it, every row
names a recipe that composes with its overrides, and the dry run lists them without training."""
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose_train

sys.path.insert(0, str(ROOT / "experiments"))
from campaign import RUNS, read_rows

ROWS, RENAMED = read_rows()


def test_every_recorded_run_is_a_row_of_the_registry_and_the_dry_run_lists_it() -> None:
    recorded = {(p.parent.parent.name, int(p.parent.name.removeprefix("seed"))) for p in RUNS.glob("*/seed*/metrics.json")}
    listed = {(row.name, seed) for row in ROWS for seed in row.seeds}
    assert recorded <= listed, sorted(recorded - listed)
    out = subprocess.run([sys.executable, "experiments/campaign.py", "--dry-run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name, seed in recorded:
        assert any(line.split()[:4] == [name, "seed", str(seed), "recorded"] for line in out.splitlines()), (name, seed)


def test_renamed_recipes_are_gone_from_conf_and_their_new_names_exist() -> None:
    recipes = {p.stem for p in (ROOT / "sts" / "conf" / "experiment").glob("*.yaml")}
    assert not set(RENAMED) & recipes and set(RENAMED.values()) <= recipes


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_every_row_composes_from_its_recipe_and_overrides(row, tmp_path: Path) -> None:
    cfg = compose_train([f"experiment={row.recipe}", "seed=0", *row.overrides], tmp_path)
    assert cfg.task_name == row.recipe


def test_a_malformed_row_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "campaign.yaml"
    bad.write_text("rows:\n  - {name: a, recipe: no_such_recipe}\n")
    with pytest.raises(SystemExit, match=r"row 1 \(a\): no recipe sts/conf/experiment/no_such_recipe.yaml"):
        read_rows(bad)
    bad.write_text("rows:\n  - {name: a, recipe: bi_soup, seed: [0]}\n")
    with pytest.raises(SystemExit, match=r"row 1 \(a\): unknown field\(s\) \['seed'\]"):
        read_rows(bad)
