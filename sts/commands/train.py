"""train: fit a model (or run a recipe's stages and soup) and write a self-contained model file."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sts.commands.cli import entry, run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def _main(cfg: DictConfig) -> float | None:
    from sts.training.recipe import run_recipe  # the training stack, loaded once the config is known

    metrics = run(run_recipe, cfg)
    return metrics.get(cfg.optimized_metric)  # what a sweeper (Optuna) optimises


main = entry(_main)


if __name__ == "__main__":
    main()
