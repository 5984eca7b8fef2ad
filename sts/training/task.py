"""The training task around a plain model (lightning-hydra-template's net / LitModule split):
losses, steps, metrics, the decision threshold chosen on dev, optimiser groups and Lightning
checkpoints. Inference never imports this module; the model it holds is an `nn.Module`."""
from __future__ import annotations

import re
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torchmetrics import CatMetric
from transformers import get_linear_schedule_with_warmup

from sts.core.calibration import figures, fit_model
from sts.core.metrics import choose_threshold, pair_metrics, parse_objective
from sts.core.model import PairModel
from sts.errors import STSError

_LAYER = re.compile(r"\.(?:layer|layers|block|h)\.(\d+)\.")
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
PREFIX = "model."  # where the model's tensors sit in a Lightning checkpoint's state_dict


class PairTask(L.LightningModule):
    """Trains and evaluates `model`.

    Args:
        model: the bi- or cross-encoder.
        loss: a module from `sts.training.losses` (None when only evaluating).
        encoder_lr / head_lr: learning rates of the encoder and of the newly initialised head.
        weight_decay, warmup_ratio: AdamW decay; linear warm-up fraction, then linear decay to 0.
        layerwise_lr_decay: encoder layer k of L learns at encoder_lr * decay**(L - k).
        threshold_objective: how dev picks the decision threshold: f1 | accuracy | precision@<target>.
    """

    def __init__(
        self,
        model: PairModel,
        loss: nn.Module | None = None,
        encoder_lr: float = 2e-5,
        head_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        layerwise_lr_decay: float = 1.0,
        threshold_objective: str = "f1",
    ) -> None:
        super().__init__()
        try:
            parse_objective(threshold_objective)
        except ValueError as e:
            raise STSError(f"model.threshold_objective={threshold_objective!r}: {e}") from None
        self.model = model
        self.loss_fn = loss
        self.threshold_objective = threshold_objective
        # plain values, recorded in the model file beside the architecture's (sts.core.hparams.TRAINING)
        self.training_hparams: dict[str, Any] = {
            "encoder_lr": encoder_lr,
            "head_lr": head_lr,
            "weight_decay": weight_decay,
            "warmup_ratio": warmup_ratio,
            "layerwise_lr_decay": layerwise_lr_decay,
            "threshold_objective": threshold_objective,
        }
        self.scores = nn.ModuleDict({s: CatMetric() for s in ("val", "test")})
        self.golds = nn.ModuleDict({s: CatMetric() for s in ("val", "test")})
        self.last_metrics: dict[str, dict[str, float]] = {}

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.model(batch)

    def payload(self) -> dict[str, Any]:
        return self.model.payload(self.training_hparams)

    # --- training -----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """Pretrained encoders load in eval mode; training needs dropout on (as in Sentence-BERT)."""
        self.train()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        raw = self(batch)
        prediction = raw if self.loss_fn.takes_logits else self.model.activation(raw)
        loss = self.loss_fn(prediction, batch["gold"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["gold"]))
        return loss

    def _eval_step(self, batch: dict[str, Any], split: str) -> dict[str, torch.Tensor]:
        """Scores the batch into the split's metrics; returns them (callbacks get them as outputs)."""
        scores = self.model.activation(self(batch)).float()
        if not bool(torch.isfinite(scores).all()):
            raise STSError(f"{split}: the model scores NaN or infinity (training diverged?); lower model.encoder_lr / model.head_lr")
        self.scores[split].update(scores)
        self.golds[split].update(batch["gold"])
        return {"scores": scores}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._eval_step(batch, "test")

    def _positive_threshold(self) -> float:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return getattr(dm, "positive_threshold", 0.5)

    def _epoch_end(self, split: str) -> None:
        scores, gold = self.scores[split].compute(), self.golds[split].compute()
        self.scores[split].reset()
        self.golds[split].reset()
        positive_threshold = self._positive_threshold()
        if split == "val":
            positive = gold.cpu() >= positive_threshold
            self.model.threshold = choose_threshold(scores.cpu(), positive, self.threshold_objective)
            if 0 < int(positive.sum()) < len(positive):  # a probability needs both outcomes on dev
                fitted_on = f"dev, {len(positive)} pairs, similar = gold >= {positive_threshold:g} of the score range"
                self.model.calibration = fit_model(scores.cpu(), positive, fitted_on)
        metrics = pair_metrics(scores.cpu(), gold.cpu(), positive_threshold, self.model.threshold)
        metrics |= figures(scores.cpu(), gold.cpu() >= positive_threshold, self.model.calibration)
        self.last_metrics[split] = metrics
        self.log_dict({f"{split}/{k}": v for k, v in metrics.items() if k != "spearman"})
        self.log(f"{split}/spearman", metrics["spearman"], prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def _encoder_depth(self, name: str, n_layers: int) -> int:
        if "embed" in name:
            return 0
        match = _LAYER.search("." + name)
        return int(match.group(1)) + 1 if match else n_layers + 1

    def param_groups(self) -> list[dict[str, Any]]:
        """AdamW groups: encoder by depth (layer-wise decay) and decay/no-decay; head at head_lr."""
        hp = self.training_hparams
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}

        def add(param: nn.Parameter, name: str, lr: float) -> None:
            decay = 0.0 if any(k in name for k in _NO_DECAY) else hp["weight_decay"]
            groups.setdefault((lr, decay), []).append(param)

        encoder = self.model.encoder
        n_layers = getattr(encoder.config, "num_hidden_layers", 0)
        for name, param in encoder.named_parameters():
            if param.requires_grad:
                depth = self._encoder_depth(name, n_layers)
                add(param, name, hp["encoder_lr"] * hp["layerwise_lr_decay"] ** (n_layers + 1 - depth))
        for module in self.model.head_modules():
            for name, param in module.named_parameters():
                if param.requires_grad:
                    add(param, name, hp["head_lr"])
        return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]

    def _loss_scaling(self) -> bool:
        """fp16 training scales the loss; bf16 and fp32 do not (their gradients are the true ones)."""
        return getattr(self.trainer.precision_plugin, "scaler", None) is not None

    def configure_optimizers(self) -> dict[str, Any]:
        # the fused kernel updates all parameters in one pass (CPU and GPU); the per-tensor loop
        # was a fifth of a bi-encoder training step on CPU. With fp16 loss scaling the gradients
        # must be unscaled before clipping, which a fused step cannot do.
        optimizer = torch.optim.AdamW(self.param_groups(), fused=not self._loss_scaling())
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(total * self.training_hparams["warmup_ratio"]), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None) -> None:
        """Lightning's mixed-precision plugin refuses to clip for any fused optimizer, bf16
        included, though bf16 has no loss scale to undo: clip those true gradients here."""
        if not gradient_clip_val or self._loss_scaling() or not isinstance(self.trainer.precision_plugin, MixedPrecision):
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    # --- checkpoints ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sts"] = self.payload()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The threshold chosen so far; a checkpoint written before the model was a module of its
        own holds its tensors without the `model.` prefix, which is added here (Lightning loads
        the state_dict after this hook)."""
        self.model.threshold = float(checkpoint.get("sts", {}).get("threshold", self.model.threshold))
        state = checkpoint.get("state_dict", {})
        if state and not any(k.startswith(PREFIX) for k in state):
            checkpoint["state_dict"] = {PREFIX + k: v for k, v in state.items()}
