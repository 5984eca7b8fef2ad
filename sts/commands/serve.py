"""serve: a model behind HTTP (sts.serving.server)."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sts.commands.cli import entry, run


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def _main(cfg: DictConfig) -> None:
    from sts.serving.server import serve

    run(serve, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
