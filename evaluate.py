"""Measure a model on a data split: python evaluate.py ckpt=MODEL [data=stsb] [split=test|val]"""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.cli import check_overrides, run
from sts.evaluation import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run(evaluate, cfg)


if __name__ == "__main__":
    check_overrides()
    main()
