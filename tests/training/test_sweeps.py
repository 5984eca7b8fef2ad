import itertools
import re
import sys
from pathlib import Path

import optuna.distributions as d
import pytest
import torch
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from sts.training.sweeps import distribution, override_value, search_space

from conftest import ROOT, TINY_TRAINER, compose_train
from helpers import run_cli

sys.path.insert(0, str(ROOT / "experiments"))
import collect  # noqa: E402

# its tests share a module fixture that is expensive to build: one test process runs them all
pytestmark = pytest.mark.xdist_group("ddp_multirun")


def test_hydra_sweep_syntax_becomes_optuna_distributions() -> None:
    parse = OverridesParser.create().parse_override
    assert distribution(parse("a=choice(16, 32)")) == d.CategoricalDistribution([16, 32])
    assert distribution(parse("a=mean,cls")) == d.CategoricalDistribution(["mean", "cls"])
    assert distribution(parse("a=tag(log, interval(1e-5, 1e-3))")) == d.FloatDistribution(1e-5, 1e-3, log=True)
    assert distribution(parse("a=interval(0, 0.2)")) == d.FloatDistribution(0.0, 0.2)
    assert distribution(parse("a=range(1, 9, 2)")) == d.IntDistribution(1, 7, step=2)
    assert [override_value(v) for v in (None, True, 1e-5, "cls")] == ["null", "true", "1e-05", "cls"]


def test_command_line_replaces_configured_search() -> None:
    fixed, space = search_space({"data.batch_size": "choice(16, 32)", "loss": "choice(cosine, cosent)"}, ["data.batch_size=8", "seed=1,2", "train=true"])
    assert fixed == ["data.batch_size=8", "train=true"]
    assert set(space) == {"loss", "seed"}


def test_optuna_search_three_trials_with_the_tiny_model(tiny_encoder: str, tmp_path: Path) -> None:
    sweep = tmp_path / "search"
    args = [str(ROOT / "train.py"), "-m", "hparams_search=stsb_optuna", "hydra.sweeper.n_trials=3", f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER, f"hydra.sweep.dir={sweep}"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [torch.load(sweep / j / "model.pt", weights_only=True)["sts"]["metrics"]["val/spearman"] for j in "012"]
    assert best["best_value"] == pytest.approx(max(values))
    assert set(best["best_params"]) == {"model.encoder_lr", "model.warmup_ratio", "model.pooling", "loss"}  # batch size fixed on the command line
    assert best["best_params"]["loss"] in ("cosine", "cosent") and 5e-6 <= best["best_params"]["model.encoder_lr"] <= 1e-4


def test_frozen_vs_finetuned_experiment_sweeps_the_grid() -> None:
    cfg = compose_train(["experiment=frozen_vs_finetuned", "model=cross_encoder", "model.freeze_encoder=true"])
    assert cfg.task_name == "frozen_vs_finetuned" and cfg.model.head_lr == 1e-3 and cfg.model.freeze_encoder
    assert cfg.loss._target_.endswith("BCELoss")  # the cross-encoder's own default survives the experiment
    sweep = yaml.safe_load((ROOT / "sts/conf/experiment/frozen_vs_finetuned.yaml").read_text())["hydra"]["sweeper"]["params"]
    assert sweep == {"model": "bi_encoder,cross_encoder", "model.freeze_encoder": "true,false", "seed": "1,2,3"}


def test_wandb_sweep_arguments_parse_as_train_overrides() -> None:
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    spec = yaml.safe_load((ROOT / "experiments/wandb_sweep.yaml").read_text())
    assert "${args_no_hyphens}" in spec["command"] and spec["program"] == "train.py"
    grid = {k: p["values"] if "values" in p else [p["value"]] for k, p in spec["parameters"].items()}
    seen = set()
    for values in itertools.product(*grid.values()):
        args = create_sweep_command_args({"args": {k: {"value": v} for k, v in zip(grid, values)}})["args_no_hyphens"]
        cfg = compose_train(args)
        run = dict(zip(grid, values))
        assert cfg.model._target_.endswith("CrossEncoder" if run["model"] == "cross_encoder" else "BiEncoder")
        assert cfg.model.freeze_encoder is run["model.freeze_encoder"] and cfg.seed == run["seed"]
        assert "wandb" in cfg.logger and cfg.task_name == "frozen_vs_finetuned"
        seen.add((run["model"], run["model.freeze_encoder"]))
    assert len(seen) == 4


def test_slurm_launcher_runs_one_task_per_device() -> None:
    from hydra import compose, initialize_config_dir

    from sts.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        multinode = compose("train", overrides=["hydra/launcher=slurm", "trainer=ddp_multinode"], return_hydra_config=True)
        one_node = compose("train", overrides=["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=8"], return_hydra_config=True)
    assert multinode.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (multinode.trainer.strategy, multinode.trainer.devices, multinode.trainer.num_nodes) == ("ddp", 4, 2)
    assert (multinode.hydra.launcher.tasks_per_node, multinode.hydra.launcher.gpus_per_node, multinode.hydra.launcher.nodes) == (4, 4, 2)
    assert (one_node.hydra.launcher.tasks_per_node, one_node.hydra.launcher.nodes) == (8, 1)


@pytest.fixture(scope="module")
def ddp_multirun(tiny_encoder: str, tmp_path_factory: pytest.TempPathFactory):
    """A Hydra multirun of 2 jobs (seeds), each a 2-process CPU DDP training."""
    cwd = tmp_path_factory.mktemp("ddp-multirun")
    args = [str(ROOT / "train.py"), "-m", "seed=1,2", "model=cross_encoder", "trainer.devices=2", "trainer.accelerator=cpu", f"encoder.name_or_path={tiny_encoder}", *TINY_TRAINER, f"hydra.sweep.dir={cwd / 'sweep'}"]
    return cwd, run_cli(args, cwd)


def test_ddp_jobs_inside_a_multirun_each_in_their_own_dir(ddp_multirun) -> None:
    cwd, result = ddp_multirun
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("Launching 2 jobs locally") == 1  # the DDP children did not start the sweep again
    assert log.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2  # each job ran 2 processes
    sweep = cwd / "sweep"
    assert sorted(p.name for p in cwd.iterdir()) == ["sweep"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert re.findall(r"^model: (.*)$", result.stdout, re.M) == [str(sweep / "0" / "model.pt"), str(sweep / "1" / "model.pt")]  # rank 0 only
    assert sorted(str(p.relative_to(sweep)) for p in sweep.rglob("csv/metrics.csv")) == ["0/csv/metrics.csv", "1/csv/metrics.csv"]
    for job, seed in (("0", 1), ("1", 2)):
        assert "test/spearman" in torch.load(sweep / job / "model.pt", weights_only=True)["sts"]["metrics"]
        assert yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())[0] == f"seed={seed}"
        assert list((sweep / job).glob("train_ddp_process_1.log"))  # the child wrote into its job's dir
        assert not (sweep / job / "0").exists()


def test_collect_writes_tables_and_chart_of_a_multirun(ddp_multirun) -> None:
    cwd, result = ddp_multirun
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = cwd / "sweep"
    out = run_cli([str(ROOT / "experiments" / "collect.py"), str(sweep)], cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = (sweep / "results.csv").read_text().splitlines()
    assert rows[0].startswith("job,configuration,seed,val/spearman") and len(rows) == 3
    table = (sweep / "results.md").read_text()
    assert "| (defaults) | 2 |" in table and "±" in table and "model=cross_encoder" in table
    assert (sweep / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_groups_seeds_of_each_configuration(tmp_path: Path) -> None:
    for n, (model, seed, spearman) in enumerate([("bi_encoder", 1, 0.80), ("bi_encoder", 2, 0.82), ("cross_encoder", 1, 0.86), ("cross_encoder", 2, 0.88)]):
        job = tmp_path / str(n)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={model}", f"seed={seed}", "trainer.max_epochs=2"]))
        torch.save({"sts": {"metrics": {"val/spearman": spearman, "test/spearman": spearman - 0.02, "train_seconds": 10.0}}}, job / "model.pt")
    (tmp_path / "4" / ".hydra").mkdir(parents=True)  # a failed job without model.pt is skipped
    (tmp_path / "4" / ".hydra" / "overrides.yaml").write_text("[]")
    collect.collect(tmp_path)
    table = (tmp_path / "results.md").read_text()
    assert "| model=bi_encoder | 2 | 81.00 ± 1.41 |" in table and "| model=cross_encoder | 2 | 87.00 ± 1.41 |" in table
    assert "All jobs: `trainer.max_epochs=2`" in table
