"""Training: the Lightning task around a model, data module, losses, callbacks, recipes (stages,
soups, augmentation) and sweeps. The only layer that imports Lightning, torchmetrics or wandb."""
