"""The Hydra configs of every command (package data; sts.config.CONFIG_DIR)."""
