"""Similar pairs within one corpus: python mine.py input=FILE [ckpt=BI_MODEL] [top_k=10] [rerank=CROSS_MODEL] [output=FILE]"""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.cli import check_overrides, run
from sts.mining import mine


@hydra.main(version_base="1.3", config_path="conf", config_name="mine")
def main(cfg: DictConfig) -> None:
    run(mine, cfg)


if __name__ == "__main__":
    check_overrides()
    main()
