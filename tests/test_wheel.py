"""An installed wheel, in a fresh virtualenv outside the checkout, gives the `sts` command with its
configs: `sts --help`, `sts predict --help`, labelling the seed pairs and a 5-step `sts train`.
The wheel goes in with --no-deps on top of this environment's packages (torch & co., linked by a
.pth file), so the test needs no network and costs seconds."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT, TINY_TRAINER

pytestmark = pytest.mark.xdist_group("wheel")


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the built wheel, its other packages this environment's."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # built from a copy: a build writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("sts", "hydra_plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)], root)
    wheel = next((root / "dist").glob("sts-*.whl"))
    env = root / "venv"
    run([sys.executable, "-m", "venv", str(env)], root)
    run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], root)
    site = Path(run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root).stdout.strip())
    (site / "zz_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after the wheel's own packages
    return env


def test_the_wheel_ships_the_command_and_its_configs(venv: Path, tmp_path: Path) -> None:
    where = run([str(venv / "bin" / "python"), "-c", "import sts; print(sts.__file__)"], tmp_path).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed package, not the checkout
    assert "predict" in run([str(venv / "bin" / "sts"), "--help"], tmp_path).stdout
    options = run([str(venv / "bin" / "sts"), "predict", "--help"], tmp_path).stdout
    assert "input: ???" in options and "batch_size: 64" in options and "backend: auto" in options


def test_the_installed_command_labels_the_seed_pairs(venv: Path, tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "pairs.csv", tmp_path / "pairs.csv")
    run([str(venv / "bin" / "sts"), "predict", "input=pairs.csv", "output=labelled.csv"], tmp_path)
    with open(tmp_path / "labelled.csv", newline="", encoding="utf-8") as f:
        assert [row["lbl"] for row in csv.DictReader(f)] == ["1", "0", "1"]


def test_the_installed_command_trains(venv: Path, tiny_encoder: str, tmp_path: Path) -> None:
    overrides = [*TINY_TRAINER, "trainer.max_steps=5", f"encoder.name_or_path={tiny_encoder}", "hydra.run.dir=run", "logger=none"]
    run([str(venv / "bin" / "sts"), "train", *overrides], tmp_path)
    assert (tmp_path / "run" / "model.pt").is_file()
