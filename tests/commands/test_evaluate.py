"""evaluate.py: metrics as training measures them, per-genre breakdown, metrics.json and plots."""
import json
from pathlib import Path

import pytest
import torch

import sts

from sts.io import checkpoint
from sts.errors import STSError
from sts.commands.evaluate import evaluate
from sts.training.fit import train

from conftest import ROOT, compose_config, refused
from helpers import run_cli


def eval_cfg(ckpt: Path, out_dir: Path, *overrides: str):
    return compose_config("evaluate", [f"ckpt={ckpt}", f"out_dir={out_dir}", *overrides])


def test_stsb_test_split_with_genres_json_and_plots(tiny_model_file: Path, tmp_path: Path, capsys) -> None:
    record = evaluate(eval_cfg(tiny_model_file, tmp_path))
    metrics = record["metrics"]
    assert set(metrics) == {"all", "captions", "forums", "news"}
    assert metrics["all"]["n"] == 1379 == sum(m["n"] for name, m in metrics.items() if name != "all")
    assert record["threshold"] == pytest.approx(checkpoint.load(tiny_model_file).threshold)
    for key in ("pearson", "spearman", "accuracy", "precision", "recall", "f1", "auroc", "average_precision", "mcc"):
        assert -1 <= metrics["all"][key] <= 1
    assert json.loads((tmp_path / "metrics.json").read_text()) == record
    for plot in ("scatter.png", "pr_curve.png", "reliability.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for key in ("ece_raw", "brier_raw", "ece", "brier"):  # the raw score read as a probability, and calibrated
        assert 0 <= metrics["all"][key] <= 1 and 0 <= metrics["news"][key] <= 1
    assert record["calibration"] == {"map": checkpoint.load(tiny_model_file).calibration.describe(), "ece_binning": "ECE over 15 equal-width bins of the probability"}
    printed = capsys.readouterr().out
    assert f"ECE {metrics['all']['ece_raw']:.4f} -> {metrics['all']['ece']:.4f}" in printed
    table = printed.splitlines()
    assert table[1].split() == ["subset", "n", "pearson", "spearman", "accuracy", "precision", "recall", "f1", "mcc", "auroc", "ap"]
    assert table[3].split()[:2] == ["all", "1379"]


def test_matches_what_training_measured(tiny_cfg, tmp_path: Path) -> None:
    cfg = tiny_cfg("train=false", "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0")
    trained = train(cfg)
    for split in ("val", "test"):
        record = evaluate(eval_cfg(cfg.model_file, tmp_path / split, f"split={split}"))
        for key in ("spearman", "pearson", "f1", "auroc"):
            assert record["metrics"]["all"][key] == pytest.approx(trained[f"{split}/{key}"], abs=1e-4)


def test_cross_encoder_trained_to_score_both_orders_keeps_it_and_evaluate_can_override(tiny_cfg, tmp_path: Path) -> None:
    cfg = tiny_cfg("model=cross_encoder", "model.both_orders=true", "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0")
    trained = train(cfg)
    assert checkpoint.load(cfg.model_file).both_orders is True
    kept = evaluate(eval_cfg(cfg.model_file, tmp_path / "kept", "precision=fp32"))  # training measures in fp32
    given = evaluate(eval_cfg(cfg.model_file, tmp_path / "given", "both_orders=false", "precision=fp32"))
    assert kept["metrics"]["all"]["spearman"] == pytest.approx(trained["test/spearman"], abs=1e-4)  # training measured both orders too
    # a 6-step model scores near-constant, so ranks (Spearman) can tie across orders; Pearson sees any change in the scores
    assert given["metrics"]["all"]["pearson"] != pytest.approx(kept["metrics"]["all"]["pearson"], abs=1e-6)


def test_own_binary_file_roc_curve_and_threshold(tiny_model_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "mine.csv"
    data.write_text("sentence1,sentence2,label\na cat sits,a cat is sitting,1\nstocks fell,a dog runs,0\nhe left,he went away,1\nrain today,the sun is hot,0\n")
    record = evaluate(eval_cfg(tiny_model_file, tmp_path / "out", "data=pairs", f"data.test={data}", "curve=roc", "threshold=0.5"))
    assert record["positive_threshold"] == 0.5 and record["threshold"] == 0.5
    assert set(record["metrics"]) == {"all"} and record["metrics"]["all"]["n"] == 4
    assert (tmp_path / "out" / "roc_curve.png").is_file()


def test_dev_carved_from_train_and_missing_split(tiny_model_file: Path, tmp_path: Path) -> None:
    record = evaluate(eval_cfg(tiny_model_file, tmp_path, "data=msrp", "split=val"))
    assert record["metrics"]["all"]["n"] == 408  # the 10% of MSRP train that training holds out
    with pytest.raises(STSError, match="no test split; set data.test=FILE"):
        evaluate(eval_cfg(tiny_model_file, tmp_path, "data=sick"))
    with pytest.raises(STSError, match="split='train'"):
        evaluate(eval_cfg(tiny_model_file, tmp_path, "split=train"))


def test_cli_writes_into_run_dir_and_errors_exit_2(tiny_cross_model_file: Path, tmp_path: Path) -> None:
    result = run_cli([str(ROOT / "evaluate.py"), f"ckpt={tiny_cross_model_file}", "split=val", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CrossEncoder on stsb val: 1500 pairs" in result.stdout
    assert {"metrics.json", "scatter.png", "pr_curve.png"} <= {p.name for p in (tmp_path / "run").iterdir()}
    result = run_cli([str(ROOT / "evaluate.py"), f"ckpt={tmp_path / 'missing.pt'}", f"hydra.run.dir={tmp_path / 'run2'}"], tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: ") and "not found" in result.stderr


@pytest.mark.parametrize("objective", ["accuracy", "precision@0.6", "f1"])
def test_threshold_objective_chooses_on_the_split(objective: str, tiny_cfg, tmp_path: Path) -> None:
    """evaluate threshold_objective=X on dev gives the threshold training with that objective stores."""
    cfg = tiny_cfg("train=false", "trainer.limit_val_batches=1.0", f"model.threshold_objective={objective}")
    trained = train(cfg)
    record = evaluate(eval_cfg(cfg.model_file, tmp_path / "ev", "split=val", f"threshold_objective={objective}"))
    assert record["threshold"] == pytest.approx(trained["val/threshold"], abs=1e-6)
    assert torch.load(cfg.model_file, weights_only=True)["sts"]["hparams"]["threshold_objective"] == objective
    assert sts.load(cfg.model_file).module.trained_with["threshold_objective"] == objective


def test_threshold_objective_refusals(tiny_model_file: Path, tiny_cfg, tmp_path: Path, capsys) -> None:
    both = eval_cfg(tiny_model_file, tmp_path, "threshold=0.5", "threshold_objective=f1")
    assert "both set" in refused(capsys, evaluate, both)
    assert "option threshold_objective='f2' must be one of f1, accuracy" in refused(capsys, evaluate, eval_cfg(tiny_model_file, tmp_path, "threshold_objective=f2"))
    assert "option model.threshold_objective='precision@2' must be" in refused(capsys, train, tiny_cfg("model.threshold_objective=precision@2"))
