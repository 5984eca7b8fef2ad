"""Hydra multirun support: Optuna search spaces from Hydra's sweep syntax, and DDP jobs inside a
multirun (Lightning's launcher would otherwise re-run the whole sweep in each child process)."""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.types import RunMode

# What Lightning's subprocess launcher writes into os.environ of the process that launches DDP.
_LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_env_before_first_job: dict[str, str | None] | None = None


def override_value(value: Any) -> str:
    """A Python value as Hydra's override grammar reads it back (None -> null, True -> true)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def distribution(override: Override) -> Any:
    """The Optuna distribution for one sweep override: choice(...) or a,b -> categorical;
    range(a, b[, step]) -> integers (stop excluded, as in Hydra); interval(a, b) -> floats;
    tag(log, ...) -> log scale."""
    import optuna.distributions as d

    sweep = override.value()
    log = "log" in getattr(sweep, "tags", set())
    if isinstance(sweep, ChoiceSweep):
        return d.CategoricalDistribution([c for c in sweep.list])
    if isinstance(sweep, RangeSweep):
        step = sweep.step or 1
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, step)):
            return d.IntDistribution(sweep.start, sweep.stop - step, step=step, log=log)
        n = math.ceil((sweep.stop - sweep.start) / step)
        return d.CategoricalDistribution([sweep.start + i * step for i in range(n)])
    if isinstance(sweep, IntervalSweep):  # Hydra parses its bounds as floats
        return d.FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    raise ValueError(f"{override.input_line}: not a sweep Optuna can search (use choice, range or interval)")


def search_space(params: Mapping[str, Any] | None, arguments: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Split `hydra.sweeper.params` plus the command line into fixed overrides and Optuna
    distributions; a sweep on the command line replaces the configured one for that key."""
    parser = OverridesParser.create()
    configured = [f"{key}={value}" for key, value in (params or {}).items()]
    fixed: dict[str, str] = {}
    space: dict[str, Any] = {}
    for override in parser.parse_overrides(configured + list(arguments)):
        key = override.get_key_element()
        fixed.pop(key, None)
        space.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line
    return list(fixed.values()), space


def _job_subprocess_cmd(local_rank: int) -> tuple[list[str], str]:
    """Child command for DDP rank `local_rank` of this multirun job: the job's own overrides,
    its own output dir, run mode (no -m, so the sweep is not started again)."""
    import __main__
    from hydra.utils import get_original_cwd, to_absolute_path

    hydra_cfg = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(hydra_cfg.overrides.task)
    command += [f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"', f"hydra.job.name=train_ddp_process_{local_rank}", "hydra.output_subdir=null", "hydra.mode=RUN"]
    return command, get_original_cwd()


def isolate_multirun_job() -> None:
    """Call at the start of each job: in a Hydra multirun, make Lightning's DDP launcher start
    this job's children (not the sweep), and drop what a previous DDP job of the same process
    left behind (its process group and launcher environment), which would make the next job
    hang waiting for ranks that have exited."""
    global _env_before_first_job
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as trainer_launcher

    for launcher in (fabric_launcher, trainer_launcher):  # the Trainer's imported its own reference
        launcher._hydra_subprocess_cmd = _job_subprocess_cmd
    if _env_before_first_job is None:
        _env_before_first_job = {k: os.environ.get(k) for k in _LAUNCHER_ENV}
        return
    for key, value in _env_before_first_job.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
