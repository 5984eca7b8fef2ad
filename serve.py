"""Serve a model over HTTP: python serve.py [ckpt=MODEL] [host=127.0.0.1] [port=8000] [workers=1]"""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.cli import check_overrides, run


def serve(cfg: DictConfig) -> None:
    from sts.serving import serve as start  # LitServe is the serve extra: imported only here

    start(cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    run(serve, cfg)


if __name__ == "__main__":
    check_overrides()
    main()
