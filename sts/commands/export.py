"""export: write a model file as a Hugging Face folder, a sentence-transformers folder or an ONNX
graph (sts.io.export does the writing)."""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from sts.commands.cli import entry, run
from sts.config import options
from sts.io.export import export as write_export


def export(cfg: DictConfig) -> Path:
    """Write cfg.ckpt as cfg.format into the folder cfg.out (complete or not at all)."""
    options.check(cfg, options.EXPORT)
    return write_export(cfg.ckpt, cfg.format, cfg.out, bool(cfg.overwrite))


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def _main(cfg: DictConfig) -> None:
    run(export, cfg)


main = entry(_main)


if __name__ == "__main__":
    main()
