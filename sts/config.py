"""Hydra/OmegaConf glue: custom resolvers and where the configs live."""
from __future__ import annotations

import netrc
import os
from pathlib import Path

from omegaconf import OmegaConf

from sts.resources import resource

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


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


def register_resolvers() -> None:
    """`${sts_resource:stsb/sts-train.csv}` -> bundled file; `${sts_wandb_offline:}` -> bool."""
    if not OmegaConf.has_resolver("sts_resource"):
        OmegaConf.register_new_resolver("sts_resource", resource)
    if not OmegaConf.has_resolver("sts_wandb_offline"):
        OmegaConf.register_new_resolver("sts_wandb_offline", wandb_offline)
