"""The commands (`sts <command>` and the root scripts): each reads its Hydra config, checks its
options and calls the Python API or the training layer."""
