from pathlib import Path

import pytest
import torch

from sts.io import checkpoint
from sts.errors import STSError
from sts.training.fit import train

from conftest import ROOT, TINY_TRAINER
from helpers import run_cli


@pytest.mark.parametrize("overrides", [[], ["model=cross_encoder"], ["model.freeze_encoder=true", "loss=cosent"], ["model=cross_encoder", "model.freeze_encoder=true"]])
def test_train_writes_model_with_threshold_and_metrics(tiny_cfg, overrides: list[str]) -> None:
    cfg = tiny_cfg(*overrides)
    metrics = train(cfg)
    for key in ("val/spearman", "val/pearson", "test/spearman", "test/f1", "test/auroc", "val/threshold"):
        assert key in metrics
    model_file = Path(cfg.model_file)
    payload = torch.load(model_file, weights_only=True)["sts"]
    assert payload["threshold"] == pytest.approx(metrics["val/threshold"])
    assert payload["calibration"]["method"] in ("platt", "isotonic") and "pairs, similar = gold >= 0.8 of the score range; chosen by 5-fold cross-fitted dev ECE" in payload["calibration"]["fitted_on"]
    assert {"val/ece", "test/brier", "test/ece_raw"} <= set(metrics)
    assert {"command", "hardware", "git_commit", "seed", "encoder"} <= set(payload["metrics"]["run"])
    assert payload["hparams"]["freeze_encoder"] == ("model.freeze_encoder=true" in overrides)
    assert type(checkpoint.load(model_file)).__name__ == ("CrossEncoder" if "model=cross_encoder" in overrides else "BiEncoder")


def test_bf16_mixed_training_runs_and_clips_gradients(tiny_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's AMP plugin refuses to clip gradients for a fused optimizer; bf16 has no loss
    scale, so the module clips them itself (trainer=gpu and bf16 on AMX CPUs train this way)."""
    clipped: list[float] = []
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm, **kw: clipped.append(max_norm) or real(params, max_norm, **kw))
    metrics = train(tiny_cfg("trainer.precision=bf16-mixed", "trainer.max_steps=3"))
    assert clipped == [1.0] * 3 and "test/spearman" in metrics


def test_zero_shot_evaluates_without_fitting(tiny_cfg) -> None:
    metrics = train(tiny_cfg("train=false"))
    assert metrics["train_seconds"] < 1.0 and "test/spearman" in metrics


def test_same_seed_same_metrics(tiny_cfg) -> None:
    a = train(tiny_cfg("trainer.deterministic=true"))
    b = train(tiny_cfg("trainer.deterministic=true", "overwrite=true"))  # the same run directory again
    assert a["val/spearman"] == pytest.approx(b["val/spearman"], abs=1e-6)


def test_weight_averaging_saves_the_averaged_weights_dev_chose(tiny_cfg) -> None:
    cfg = tiny_cfg(
        "trainer.max_steps=12",
        "trainer.val_check_interval=4",
        "model.encoder_lr=1e-3",
        "callbacks.ema={_target_:lightning.pytorch.callbacks.EMAWeightAveraging,decay:0.5}",
    )
    metrics = train(cfg)
    (best,) = (Path(cfg.paths.output_dir) / "checkpoints").glob("best-*.ckpt")
    ckpt = torch.load(best, weights_only=False)
    saved = checkpoint.load(cfg.model_file).state_dict()
    key = "encoder.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(saved[key], ckpt["state_dict"]["model." + key])  # the average dev scored
    assert not torch.equal(saved[key], ckpt["current_model_state"]["model." + key])  # not the raw weights
    (score,) = [v["best_model_score"] for v in ckpt["callbacks"].values() if v.get("monitor") == "val/spearman"]
    assert metrics["val/spearman"] == pytest.approx(float(score), abs=1e-6)


def test_missing_encoder_is_one_clear_error(tiny_cfg, tmp_path: Path) -> None:
    with pytest.raises(STSError, match="could not be loaded.*encoder.name_or_path"):
        train(tiny_cfg(f"encoder.name_or_path={tmp_path / 'no-such-model'}"))


def test_unwritable_output_dir_fails_before_training(tiny_cfg, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("x")
    cfg = tiny_cfg()
    cfg.paths.output_dir = str(blocked / "run")
    with pytest.raises(STSError, match="not writable"):
        train(cfg)


def test_train_then_predict_end_to_end(tiny_encoder: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli([str(ROOT / "train.py"), f"encoder.name_or_path={tiny_encoder}", *TINY_TRAINER, f"hydra.run.dir={run_dir}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test" in result.stdout and f"model: {run_dir / 'model.pt'}" in result.stdout
    pairs = tmp_path / "pairs.csv"
    pairs.write_text((ROOT / "examples" / "pairs.csv").read_text())
    result = run_cli([str(ROOT / "predict.py"), f"ckpt={run_dir / 'model.pt'}", f"input={pairs}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = (tmp_path / "pairs.pred.csv").read_text().splitlines()
    assert out[0] == "index,line1,line2,score,lbl" and len(out) == 4
    assert out[1].startswith("0,the cat ate the mouse,the mouse was eaten by the cat,")
    assert not (tmp_path / "outputs").exists()  # predict does not litter a run directory


def test_ddp_two_cpu_processes_one_output_dir(tiny_encoder: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    args = [str(ROOT / "train.py"), "model=cross_encoder", "trainer.devices=2", "trainer.accelerator=cpu", f"encoder.name_or_path={tiny_encoder}", *TINY_TRAINER, f"hydra.run.dir={run_dir}"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "GLOBAL_RANK: 1" in log or "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in log
    assert (run_dir / "model.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert not (tmp_path / "outputs").exists()


def test_finished_run_removes_its_lightning_checkpoints_and_logs_progress(tiny_cfg, capsys, caplog) -> None:
    """keep_checkpoints=false (the default): model.pt stays, checkpoints/ goes; without a
    terminal, progress comes as log lines and Lightning's noise does not come at all."""
    import logging

    caplog.set_level(logging.INFO)
    cfg = tiny_cfg("keep_checkpoints=false", "trainer.max_steps=-1", "trainer.max_epochs=2", "trainer.limit_train_batches=3")
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert Path(cfg.model_file).is_file() and not (run_dir / "checkpoints").exists()
    assert "removed this run's Lightning checkpoints" in capsys.readouterr().out
    progress = [r.getMessage() for r in caplog.records if r.name == "sts.progress"]
    assert any(m.startswith("training: step 3/6 (50%), epoch 1/2") and "ETA" in m for m in progress), progress
    assert any(m.startswith("dev: spearman") for m in progress) and any(m.startswith("test: spearman") for m in progress)
    lightning = [r.getMessage() for r in caplog.records if r.name.startswith("lightning")]
    assert not [m for m in lightning if "Tip:" in m or "was configured so" in m], lightning


def test_train_script_output_without_a_terminal_has_no_lightning_noise(tiny_encoder: str, tmp_path: Path) -> None:
    result = run_cli([str(ROOT / "train.py"), f"encoder.name_or_path={tiny_encoder}", "logger=none", *TINY_TRAINER, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for noise in ("litlogger", "was configured so", "LeafSpec", "Loading `train_dataloader`"):
        assert noise not in output, (noise, output)
    assert "training: step 6/6 (100%)" in output and "dev: spearman" in output
