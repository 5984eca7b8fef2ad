"""Every bash and python example of README.md and docs/ runs (docgen/examples.py): the blocks of a
page in order in one scratch folder, as a reader would; `cfg` blocks compose each command's config;
`server` blocks run against a live `sts serve`; `slow` blocks only with -m docs_slow."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from docgen import ROOT
from docgen.examples import Example, every, examples, hydra_commands, missing_output

EXAMPLES = every()
PAGES = sorted({e.page for e in EXAMPLES})
RUNNABLE = [p for p in PAGES if any(e.mode in ("run", "server") for e in examples(ROOT / p))]
SLOW = [p for p in PAGES if any(e.mode == "slow" for e in examples(ROOT / p))]
CFG = [e for e in EXAMPLES if e.mode == "cfg"]


def _workspace(tmp: Path) -> dict[str, str]:
    """A scratch folder with what the examples refer to (examples/, the root scripts) and the
    environment they run in: this checkout's package, offline, torch scoring, a private cache."""
    shutil.copytree(ROOT / "examples", tmp / "examples")
    for script in ROOT.glob("*.py"):
        shutil.copy(script, tmp / script.name)
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WANDB_MODE="offline",
        STS_BACKEND="torch",
        STS_CACHE=str(tmp / "cache"),
    )
    env.pop("STS_API_KEY", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sts.commands.main", "serve", f"port={port}"], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return proc, port
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise AssertionError("sts serve did not answer /health within 180 s")


def _run(example: Example, cwd: Path, env: dict[str, str], port: int | None) -> None:
    code = example.code.replace("8000", str(port)) if port else example.code
    argv = ["bash", "-e", "-o", "pipefail", "-c", code] if example.language == "bash" else [sys.executable, "-c", code]
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    assert done.returncode == 0, f"{example.id} exited {done.returncode}:\n{done.stdout[-3000:]}"
    missing = missing_output(example.expected, done.stdout)
    assert not missing, f"{example.id}: output lacks {missing}\n--- it printed:\n{done.stdout[-3000:]}"


def _run_page(page: str, modes: tuple[str, ...], tmp_path: Path) -> None:
    env = _workspace(tmp_path)
    chosen = [e for e in examples(ROOT / page) if e.mode in modes]
    server = _server(tmp_path, env) if any(e.mode == "server" for e in chosen) else None
    try:
        for example in chosen:
            _run(example, tmp_path, env, server[1] if server and example.mode == "server" else None)
    finally:
        if server:
            server[0].terminate()
            server[0].wait(timeout=60)


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_examples_run(page: str, tmp_path: Path) -> None:
    _run_page(page, ("run", "server"), tmp_path)


@pytest.mark.docs_slow
@pytest.mark.parametrize("page", SLOW)
def test_page_examples_run_with_the_slow_ones(page: str, tmp_path: Path) -> None:
    _run_page(page, ("run", "server", "slow"), tmp_path)


def _first_of_sweeps(overrides: list[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line for o in parsed]


@pytest.mark.parametrize("example", CFG, ids=[e.id for e in CFG])
def test_config_examples_compose(example: Example) -> None:
    """Each command line composes: its overrides parse, its keys and config choices exist."""
    from sts.commands.cli import check_overrides
    from sts.config import compose

    for command, *args in hydra_commands(example.code):
        overrides = [a for a in args if a not in ("-m", "--multirun")]
        check_overrides(overrides)
        compose(command, _first_of_sweeps(overrides) if len(overrides) != len(args) else overrides)


def test_every_example_is_run_or_says_why_not() -> None:
    assert EXAMPLES, "no examples found"
    assert [e.id for e in EXAMPLES if e.mode in ("skip", "slow") and not e.reason] == []
    assert [e.id for e in EXAMPLES if e.mode == "cfg" and e.language != "bash"] == []

