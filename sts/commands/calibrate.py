"""Calibrate a model on dev: the probability that a pair is similar (sts.core.calibration, the
map training fits at its end), for a model file trained before it did, or for the bundled model.

    python -m sts.commands.calibrate ckpt=MODEL.pt out=NEW.pt [data=stsb]   # a new file; MODEL.pt is left as it is
    python -m sts.commands.calibrate                                         # maintainers: the bundled record

The decision threshold is kept as stored (so `lbl` does not change); the bundled record's is
chosen here as training chooses one (F1-maximising on STS-B dev). Both are measured as evaluate.py
measures, and a test recomputes the bundled record and compares."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from sts.api import Model, load
from sts.commands.cli import entry, run
from sts.commands.evaluate import read_split
from sts.config import compose, options
from sts.core.calibration import figures, fit_model
from sts.core.metrics import choose_threshold, pair_metrics
from sts.core.model import PairModel
from sts.data.tables import check_apart
from sts.errors import STSError
from sts.io import bundled, checkpoint


def dev_and_test(model: Model, data: DictConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """(raw scores, gold, gold cut) of dev and, where the data has one, test."""
    found = {}
    for split in ("val", "test"):
        try:
            pairs, positive_threshold = read_split(data, split)
        except STSError:
            if split == "val":
                raise
            continue
        raw = model.score(pairs.sentence1, pairs.sentence2, clip=False)
        found[split] = (torch.from_numpy(raw), torch.from_numpy(pairs.gold), positive_threshold)
    return found


def fit_on_dev(module: PairModel, scores: dict[str, tuple[torch.Tensor, torch.Tensor, float]], data_name: str) -> dict[str, dict[str, float]]:
    """Fit `module.calibration` on dev; each split's metrics at the module's threshold, with ECE and Brier."""
    dev_scores, dev_gold, positive_threshold = scores["val"]
    fitted_on = f"{data_name} dev, {len(dev_gold)} pairs, similar = gold >= {positive_threshold:g} of the score range"
    module.calibration = fit_model(dev_scores, dev_gold >= positive_threshold, fitted_on)
    return {
        split: {k: round(v, 6) for k, v in (pair_metrics(s, gold, cut, module.threshold) | figures(s, gold >= cut, module.calibration)).items()}
        for split, (s, gold, cut) in scores.items()
    }


def calibrate(batch_size: int = 64) -> dict[str, Any]:
    """The bundled record: the threshold that maximises STS-B dev F1, the calibration fitted on
    dev, and dev/test metrics."""
    module = bundled.module()
    model = Model(module, {}, batch_size=batch_size, precision="fp32", backend="torch")  # the shipped figures are fp32, on any host
    data = compose("evaluate").data
    result: dict[str, Any] = {"model": bundled.NAME, "architecture": "BiEncoder", "pooling": bundled.POOLING, "max_length": bundled.MAX_LENGTH, "data": "stsb"}
    scores = dev_and_test(model, data)
    dev_scores, dev_gold, positive_threshold = scores["val"]
    module.threshold = choose_threshold(dev_scores, dev_gold >= positive_threshold, "f1")
    result["threshold"] = round(module.threshold, 6)
    measured = fit_on_dev(module, scores, "stsb")
    module.threshold = result["threshold"]
    result["calibration"] = module.calibration.record
    result |= measured
    result["made_by"] = "python -m sts.commands.calibrate"
    return result


def calibrate_file(cfg: DictConfig) -> Path:
    """Fit the calibration of cfg.ckpt on cfg.data's dev and write the model, so calibrated,
    to cfg.out (a new file: never the input)."""
    options.check(cfg, options.CALIBRATE)
    out = Path(cfg.out)
    check_apart({"out": out}, {"ckpt": cfg.ckpt})
    if out.exists() and not cfg.overwrite:
        raise STSError(f"{out}: already exists; pass overwrite=true to replace it, or choose another out=")
    model = load(cfg.ckpt, batch_size=int(cfg.batch_size), precision="fp32", device=cfg.device, backend="torch")
    module = model.module
    measured = fit_on_dev(module, dev_and_test(model, cfg.data), cfg.data.name)
    metrics = dict(module.checkpoint_metrics) | {f"{split}/{k}": v for split, m in measured.items() for k, v in m.items() if k in ("ece", "brier", "ece_raw", "brier_raw")}
    checkpoint.save(module, out, metrics, module.trained_with)
    for split, m in measured.items():
        print(f"{split}: ECE {m['ece_raw']:.4f} -> {m['ece']:.4f}, Brier {m['brier_raw']:.4f} -> {m['brier']:.4f} (raw score -> calibrated)")
    print(f"{module.calibration.describe()}\nwrote {out}")
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="calibrate")
def _main(cfg: DictConfig) -> None:
    if cfg.ckpt is None:
        bundled.RECORD.write_text(json.dumps(calibrate(), indent=2) + "\n")
        print(f"wrote {bundled.RECORD}")
        return
    run(calibrate_file, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
