"""Shared behaviour of the entry points: user errors become one line on stderr and a non-zero
exit (2; 130 when interrupted), never a traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sts.data.tables import writable_dir
from sts.errors import Interrupted, STSError

T = TypeVar("T")


def run(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except Interrupted as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(130)
    except STSError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # the file system refused (read-only, full, permissions): not a bug of ours
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)


class RunDirCheck(Callback):
    """Hydra callback (train.yaml, evaluate.yaml): Hydra creates the run directory, and its log
    file, before any of our code runs, and reports a read-only or otherwise unwritable place with
    a traceback. Checked here first, it is one line and exit 2."""

    def _check(self, folder: str) -> None:
        path = Path(folder)
        try:
            writable_dir(path)
        except OSError as e:
            print(f"error: {path}: the run directory is not writable ({e.strerror or e}); set hydra.run.dir=<a writable folder>", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir)


class RunDirClaim(RunDirCheck):
    """Hydra callback (train.yaml): also refuse a run directory holding another run's outputs
    (`sts.training.fit.check_run_dir`) before Hydra writes its own files (.hydra/, the log) there."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from sts.training.fit import check_run_dir

        super().on_run_start(config, **kwargs)
        try:
            check_run_dir(Path(config.hydra.run.dir), config.get("ckpt_path"), bool(config.get("overwrite", False)))
        except STSError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)


# Hydra's own flags that take a value (the value is not an override)
_VALUE_FLAGS = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "--cfg", "-c", "--package", "-p", "--info", "--experimental-rerun")


def check_overrides(argv: list[str] | None = None) -> None:
    """Before Hydra starts: an override it cannot parse (`threshold=[`, `a=b=c`, `foo`) is one
    line and exit 2, not Hydra's several lines. Keys and values are checked later, by Hydra
    (does the key exist) and by `sts.config.options` (is the value allowed)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    args, skip = sys.argv[1:] if argv is None else argv, False
    parser = OverridesParser.create()
    for arg in args:
        if skip or arg.startswith("-"):
            skip = not skip and arg in _VALUE_FLAGS
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as e:
            reason = next((line for line in str(e).splitlines() if line and not line.startswith(("See ", "Error parsing"))), "cannot be parsed")
            print(f"error: override {arg!r} is not key=value in Hydra's syntax ({reason}); quote values with brackets or commas, e.g. 'columns=[a,b]'", file=sys.stderr)
            sys.exit(2)


def entry(hydra_main: Callable[[], Any]) -> Callable[[], None]:
    """A command's entry point (`sts <command>`, its root script, `python -m`): an override Hydra
    cannot parse is one line (`check_overrides`), then the command's Hydra app runs."""

    def main() -> None:
        check_overrides()
        hydra_main()

    return main
