"""The bundled zero-shot model's shipped calibration is what `python -m sts.commands.calibrate` computes."""
import pytest

from sts.commands.calibrate import calibrate
from sts.io import bundled


@pytest.mark.slow
def test_shipped_calibration_recomputes() -> None:
    shipped, fresh = bundled.record(), calibrate()
    assert fresh["threshold"] == pytest.approx(shipped["threshold"], abs=1e-4)
    for split in ("val", "test"):
        assert fresh[split].keys() == shipped[split].keys()
        for name, value in shipped[split].items():
            assert fresh[split][name] == pytest.approx(value, abs=1e-4), (split, name)
    assert shipped["test"]["spearman"] == pytest.approx(0.8203, abs=1e-4)  # as recorded (experiments/RESULTS.md, zero_shot)
