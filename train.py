"""Train an STS model: python train.py [model=cross_encoder] [loss=cosent] [experiment=NAME] ..."""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.cli import check_overrides, run
from sts.recipe import run_recipe


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = run(run_recipe, cfg)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    check_overrides()
    main()
