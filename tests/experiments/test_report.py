"""experiments/report.py's choice of recipe: best mean dev Spearman over 3 seeds, a better-transferring
recipe within the best's seed noise instead, and the transfer check against the untrained encoder."""
import json
import sys
from pathlib import Path

from conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
import report


def run(tmp_path: Path, name: str, seed: int, dev: float, transfer: dict[str, float] | None = None, encoder: str = report.BUNDLED) -> dict:
    folder = tmp_path / name / f"seed{seed}"
    for data, spearman in (transfer or {}).items():
        (folder / "transfer").mkdir(parents=True, exist_ok=True)
        metrics = {"spearman": spearman / 100, "accuracy": 0.7, "f1": 0.75}
        (folder / "transfer" / f"{data}.json").write_text(json.dumps({"data": data, "metrics": {"all": metrics}}))
    return {"experiment": name, "architecture": "BiEncoder", "frozen": False, "encoder": encoder, "seed": seed, "dev_spearman": dev, "test_spearman": dev - 3, "_dir": folder}


def test_best_dev_wins_unless_a_recipe_within_its_noise_transfers_better(tmp_path: Path) -> None:
    runs = [run(tmp_path, "best", s, d, {"sick": 78.0, "msrp": 50.0}) for s, d in enumerate((89.5, 89.7, 89.6))]
    runs += [run(tmp_path, "close", s, d, {"sick": 79.0, "msrp": 51.0}) for s, d in enumerate((89.55, 89.5, 89.6))]
    runs += [run(tmp_path, "far", s, d, {"sick": 90.0, "msrp": 60.0}) for s, d in enumerate((88.0, 88.1, 88.2))]
    runs += [run(tmp_path, "lucky", 0, 95.0), run(tmp_path, "teacher", 0, 99.0, encoder=report.TEACHER)]
    name, group, why = report.chosen(runs)["BiEncoder"]
    assert name == "close" and len(group) == 3 and "transfers better" in why
    assert report.chosen([r for r in runs if r["experiment"] != "close"])["BiEncoder"][0] == "best"


def test_transfer_is_checked_against_the_untrained_encoder(tmp_path: Path) -> None:
    untrained = [run(tmp_path, report.UNTRAINED, 0, 86.0, {"sick": 80.0, "msrp": 50.0})]
    group = [run(tmp_path, "r", s, 89.0, {"sick": 79.0, "msrp": 52.0}) for s in range(3)]
    lines = report.transfer_lines(group, untrained)
    assert any(line.startswith("  - transfer to sick") and line.endswith("NOT met (spearman)") for line in lines)
    assert any(line.startswith("  - transfer to msrp") and line.endswith("met") and "NOT" not in line for line in lines)
    assert "none recorded" in report.transfer_lines([run(tmp_path, "staged", 0, 89.0)], untrained)[0]
