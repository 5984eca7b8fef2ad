"""Label new training pairs with a trained model: python augment.py teacher=MODEL out=FILE [sampler=BI_MODEL]"""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.augmentation import augment
from sts.cli import check_overrides, run


@hydra.main(version_base="1.3", config_path="conf", config_name="augment")
def main(cfg: DictConfig) -> None:
    run(augment, cfg)


if __name__ == "__main__":
    check_overrides()
    main()
