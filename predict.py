"""Label sentence pairs: python predict.py ckpt=MODEL input=pairs.csv [output=...] [threshold=...]"""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.cli import check_overrides, run
from sts.prediction import predict


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    run(predict, cfg)


if __name__ == "__main__":
    check_overrides()
    main()
