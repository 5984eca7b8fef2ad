"""augment: silver pairs for training, labelled by a teacher (sts.training.augmentation)."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sts.commands.cli import entry, run


@hydra.main(version_base="1.3", config_path="../conf", config_name="augment")
def _main(cfg: DictConfig) -> None:
    from sts.training.augmentation import augment

    run(augment, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
