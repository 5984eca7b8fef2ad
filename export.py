"""Write a model for other tools: python export.py ckpt=MODEL format=sentence-transformers|hf|onnx out=DIR"""
import hydra
from omegaconf import DictConfig

import sts  # noqa: F401  (registers config resolvers)
from sts.cli import check_overrides, run
from sts.export import export


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    run(export, cfg)


if __name__ == "__main__":
    check_overrides()
    main()
