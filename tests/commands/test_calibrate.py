"""python -m sts.commands.calibrate: a model file without a calibration gets one fitted on dev,
written to a new file with its threshold, weights and record unchanged."""
from pathlib import Path

import pytest
import torch

import sts
from sts.commands.calibrate import calibrate_file
from sts.io import checkpoint

from conftest import compose_config, refused


@pytest.fixture
def uncalibrated(tiny_cross_model_file: Path, tmp_path: Path) -> Path:
    module = checkpoint.load(tiny_cross_model_file)
    module.calibration = None
    return checkpoint.save(module, tmp_path / "old.pt", module.checkpoint_metrics, module.trained_with)


def test_calibrate_writes_a_new_calibrated_file(uncalibrated: Path, tmp_path: Path, capsys) -> None:
    before = uncalibrated.read_bytes()
    out = calibrate_file(compose_config("calibrate", [f"ckpt={uncalibrated}", f"out={tmp_path / 'new.pt'}"]))
    assert uncalibrated.read_bytes() == before
    old, new = checkpoint.load(uncalibrated), checkpoint.load(out)
    assert new.calibration is not None and new.calibration.fitted_on.startswith("stsb dev, 1500 pairs, similar = gold >= 0.8 of the score range; chosen by")
    assert new.threshold == old.threshold and new.trained_with == old.trained_with
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
    assert {"val/ece", "test/ece", "val/brier_raw"} <= set(new.checkpoint_metrics) and new.checkpoint_metrics["val/spearman"] == old.checkpoint_metrics["val/spearman"]
    s1, s2 = ["a man plays a guitar", "the cat sleeps"], ["a man is playing guitar", "stocks fell"]
    assert sts.load(out, calibrated=True).label(s1, s2).tolist() == sts.load(uncalibrated).label(s1, s2).tolist()
    assert "-> " in capsys.readouterr().out


def test_calibrate_refuses_to_overwrite_its_input(uncalibrated: Path, capsys) -> None:
    assert "out" in refused(capsys, calibrate_file, compose_config("calibrate", [f"ckpt={uncalibrated}", f"out={uncalibrated}"]))
