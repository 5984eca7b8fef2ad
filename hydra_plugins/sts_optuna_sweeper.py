"""Hydra Sweeper plugin `hydra/sweeper=sts_optuna`: a thin loop over current Optuna (ask/tell).

hydra-optuna-sweeper 1.3.0 requires optuna<3 (and pulled a hydra-core release candidate); this
plugin keeps hydra-core 1.3 and a current Optuna. It lives in the `hydra_plugins` namespace
package because Hydra only instantiates sweepers from there. Search spaces use Hydra's sweep
syntax (`choice`, `range`, `interval`, `tag(log, ...)`), see sts.training.sweeps.distribution.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from sts.training.sweeps import override_value, search_space

log = logging.getLogger(__name__)


class OptunaSweeper(Sweeper):
    """Runs `n_trials` jobs, `n_jobs` at a time (parallel with a parallel launcher such as
    submitit), each with overrides asked from an Optuna study and told its return value."""

    def __init__(
        self,
        direction: str = "maximize",
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: Any = None,
        study_name: str | None = None,
        storage: str | None = None,
        params: DictConfig | None = None,
    ) -> None:
        self.direction, self.n_trials, self.n_jobs = direction, n_trials, max(1, n_jobs)
        self.sampler, self.study_name, self.storage = sampler, study_name, storage
        self.params = OmegaConf.to_container(params, resolve=True) if params is not None else {}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        fixed, space = search_space(self.params, arguments)
        study = optuna.create_study(
            direction=self.direction, sampler=self.sampler, study_name=self.study_name, storage=self.storage, load_if_exists=self.storage is not None
        )
        log.info("Optuna study %s, %s, %d trials; search space: %s", study.study_name, self.direction, self.n_trials, {k: repr(v) for k, v in space.items()})
        done, failures = 0, []
        while done < self.n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - done))]
            batch = [tuple(fixed + [f"{k}={override_value(v)}" for k, v in t.params.items()]) for t in trials]
            self.validate_batch_is_legal(batch)
            for trial, result in zip(trials, self.launcher.launch(batch, initial_job_idx=done)):
                try:
                    value = float(result.return_value)
                    study.tell(trial, value)
                except Exception as e:  # a failed job (return_value re-raises its error) or no metric
                    failures.append(e)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    log.warning("trial %d failed: %s", trial.number, e)
            done += len(trials)
        if len(failures) == self.n_trials:
            raise RuntimeError(f"all {self.n_trials} Optuna trials failed; the first error: {failures[0]!r}") from failures[0]
        best = {"name": "optuna", "best_params": study.best_params, "best_value": study.best_value, "n_trials": self.n_trials, "n_failed": len(failures)}
        out = Path(self.config.hydra.sweep.dir) / "optimization_results.yaml"
        OmegaConf.save(OmegaConf.create(best), out)
        log.info("best %s = %.5f with %s (written to %s)", self.direction, study.best_value, study.best_params, out)
        return best
