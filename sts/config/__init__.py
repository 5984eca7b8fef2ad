"""Hydra/OmegaConf glue: the configs shipped in the package (sts/conf), custom resolvers, composing
a config outside a Hydra run, and what a scoring config says to `sts.load`."""
from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from sts.resources import resource

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"  # sts/conf, inside the package


def wandb_offline() -> bool:
    """Offline unless the user configured wandb (API key, WANDB_MODE=online, or a netrc login),
    so training never needs the network."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


def _training_precision() -> str:
    from sts.core.precision import training_precision  # torch: only when a trainer config resolves

    return training_precision()


def register_resolvers() -> None:
    """`${sts_resource:stsb/sts-train.csv}` -> bundled file; `${sts_wandb_offline:}` -> bool;
    `${sts_terminal:}` -> whether stderr is a terminal (progress bar there, log lines elsewhere);
    `${sts_train_precision:}` -> bf16-mixed where the hardware has native bf16, else 32-true."""
    if not OmegaConf.has_resolver("sts_resource"):
        OmegaConf.register_new_resolver("sts_resource", resource)
    if not OmegaConf.has_resolver("sts_wandb_offline"):
        OmegaConf.register_new_resolver("sts_wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("sts_terminal"):
        OmegaConf.register_new_resolver("sts_terminal", lambda: sys.stderr.isatty())
    if not OmegaConf.has_resolver("sts_train_precision"):
        OmegaConf.register_new_resolver("sts_train_precision", _training_precision)


def compose(config_name: str = "train", overrides: list[str] | None = None, output_dir: str | Path | None = None) -> DictConfig:
    """The config an entry point would see for these overrides, outside a Hydra run (scripts,
    tests): `${hydra:...}` interpolations resolve and `paths.output_dir` is set explicitly."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        # inside a running entry point (a recipe's stage): its Hydra and HydraConfig stay as they are
        cfg = hydra_compose(config_name, overrides=overrides or [], return_hydra_config=True)
    else:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name, overrides=overrides or [], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        if output_dir is not None and "paths" in cfg:
            cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg


def scoring_settings(cfg: Any) -> dict[str, Any]:
    """How a command's config says to score (the `scoring` fields every scoring config shares:
    device, precision, batch size, backend, quantize, calibration, calibrated, long inputs, padding): the
    keyword arguments of `sts.load`."""
    from sts.core.backends import read_calibration
    from sts.core.windows import LongInputs

    return {
        "device": cfg.device,
        "precision": cfg.precision,
        "batch_size": cfg.batch_size,
        "backend": cfg.backend,
        "quantize": cfg.quantize,
        "calibration": read_calibration(cfg.calibration),
        "calibrated": bool(cfg.calibrated),
        "long_inputs": LongInputs(cfg.long_inputs, cfg.chunk_overlap, cfg.chunk_reduce, cfg.chunk_max_windows),
        "pad_to_multiple_of": int(cfg.pad_to_multiple_of),
    }


register_resolvers()
