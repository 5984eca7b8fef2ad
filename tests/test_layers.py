"""The package's layers hold: the import contracts (pyproject.toml, import-linter) and, at run time,
inference (the API, predict, evaluate, embed, mine, the server's workers) loads none of the
training stack. Each entry point runs in a fresh process, which then lists what it imported."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

TRAINING_STACK = ("lightning", "pytorch_lightning", "torchmetrics", "wandb", "optuna", "matplotlib", "sklearn", "submitit")
# and Ray: only predict engine=ray imports it (the ray extra)
REPORT = f"""
import sys
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({(*TRAINING_STACK, "ray")!r}))
print('IMPORTED=' + ','.join(heavy))
"""


def imported(code: str, cwd: Path) -> list[str]:
    """The training-stack packages a fresh process running `code` imported."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", code + REPORT], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("IMPORTED="))
    return [name for name in line.removeprefix("IMPORTED=").split(",") if name]


def command(name: str, *overrides: str) -> str:
    return f"import sys\nsys.argv = ['{name}', *{list(overrides)!r}]\nfrom sts.commands.{name} import main\nmain()\n"


def test_import_contracts_hold() -> None:
    """Layers (commands > serving | training | scale > api | config > io > core > data), no cycles,
    no training stack below the commands, Ray only in sts.scale; `lint-imports` reads them from pyproject.toml."""
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "4 kept, 0 broken" in result.stdout


def test_the_api_imports_no_training_stack(tmp_path: Path) -> None:
    code = """
import sts
model = sts.load()
model.score(["a cat sits"], ["a cat is sitting"]); model.label(["a cat sits"], ["a dog"])
model.embed(["a cat"]); model.mine(["a cat sits", "a cat is sitting", "stocks fell"], top_k=1)
"""
    assert imported(code, tmp_path) == []


@pytest.fixture(scope="module")
def small_stsb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 pairs of STS-B test, in its own layout."""
    from sts.resources import resource

    path = tmp_path_factory.mktemp("data") / "sts-test.csv"
    path.write_text("".join(Path(resource("stsb/sts-test.csv")).read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name, overrides, allowed",
    [
        ("predict", ["input={ROOT}/examples/pairs.csv", "output={tmp}/out.csv"], ()),
        ("evaluate", ["data.test={data}", "out_dir={tmp}/ev", "plots=false"], ()),
        ("evaluate", ["data.test={data}", "out_dir={tmp}/ev"], ("matplotlib", "sklearn")),  # what it plots, only then
        ("embed", ["input={ROOT}/examples/pairs.csv", "column=line1", "out={tmp}/e.npy"], ()),
        ("mine", ["input={ROOT}/examples/pairs.csv", "column=line1", "output={tmp}/m.csv", "top_k=1"], ()),
    ],
)
def test_scoring_commands_import_no_training_stack(name: str, overrides: list[str], allowed: tuple[str, ...], small_stsb: Path, tmp_path: Path) -> None:
    args = [o.format(ROOT=ROOT, tmp=tmp_path, data=small_stsb) for o in overrides]
    assert set(imported(command(name, *args), tmp_path)) <= set(allowed)


def test_server_workers_import_no_training_stack(tmp_path: Path) -> None:
    """What the HTTP process builds and what a worker loads (LitAPI.setup) before serving."""
    code = """
from sts.config import compose
from sts.serving.server import build
server = build(compose("serve", []))
for api in server.litapi_connector:
    api.setup("cpu")
"""
    assert imported(code, tmp_path) == []
