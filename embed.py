"""Embed (and cluster) sentences: python embed.py [ckpt=MODEL] input=FILE out=FILE.npy [cluster.k=5]"""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.cli import check_overrides, run
from sts.embedding import embed


@hydra.main(version_base="1.3", config_path="conf", config_name="embed")
def main(cfg: DictConfig) -> None:
    run(embed, cfg)


if __name__ == "__main__":
    check_overrides()
    main()
