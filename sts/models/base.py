"""What bi- and cross-encoders share: optimisation, metrics, threshold, checkpoint payload and
batched scoring of raw text. Subclasses only say how a batch becomes a score."""
from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torchmetrics import CatMetric
from transformers import get_linear_schedule_with_warmup

from sts.data.collate import PairInputs
from sts.errors import STSError
from sts.metrics import choose_threshold, pair_metrics, parse_objective

Encode = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # a batch of padded token ids -> embeddings or logits

_LAYER = re.compile(r"\.(?:layer|layers|block|h)\.(\d+)\.")
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class PairModule(L.LightningModule):
    """A model that scores sentence pairs in 0-1 and knows how to train and evaluate itself.

    Args:
        encoder: a Hugging Face encoder (AutoModel).
        tokenizer: its tokenizer; travels with checkpoints.
        loss: a module from `sts.models.losses` (None when only predicting).
        max_length: tokens per input after truncation.
        freeze_encoder: encoder weights get no gradient; only the head learns.
        encoder_lr / head_lr: learning rates of the encoder and of the newly initialised head.
        weight_decay, warmup_ratio: AdamW decay; linear warm-up fraction, then linear decay to 0.
        layerwise_lr_decay: encoder layer k of L learns at encoder_lr * decay**(L - k).
        threshold_objective: how dev picks the decision threshold: f1 | accuracy | precision@<target>.
    """

    # cross-encoders read the two sentences joined in one input, bi-encoders each on its own
    joined: ClassVar[bool] = False

    def __init__(
        self,
        encoder: nn.Module,
        tokenizer: Any,
        loss: nn.Module | None = None,
        max_length: int = 128,
        freeze_encoder: bool = False,
        encoder_lr: float = 2e-5,
        head_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        layerwise_lr_decay: float = 1.0,
        threshold_objective: str = "f1",
    ) -> None:
        super().__init__()
        # the metrics a loaded model file recorded (sts.checkpoint.load fills them in)
        self.checkpoint_metrics: dict[str, Any] = {}
        try:
            parse_objective(threshold_objective)
        except ValueError as e:
            raise STSError(f"model.threshold_objective={threshold_objective!r}: {e}") from None
        self.threshold_objective = threshold_objective
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.loss_fn = loss
        self.saved_hparams: dict[str, Any] = {  # plain values, written into the model file (payload)
            "max_length": max_length,
            "freeze_encoder": freeze_encoder,
            "encoder_lr": encoder_lr,
            "head_lr": head_lr,
            "weight_decay": weight_decay,
            "warmup_ratio": warmup_ratio,
            "layerwise_lr_decay": layerwise_lr_decay,
            "threshold_objective": threshold_objective,
        }
        self.max_length = max_length
        self.freeze_encoder = freeze_encoder
        self.threshold = 0.5
        self.scores = nn.ModuleDict({s: CatMetric() for s in ("val", "test")})
        self.golds = nn.ModuleDict({s: CatMetric() for s in ("val", "test")})
        self.last_metrics: dict[str, dict[str, float]] = {}
        if freeze_encoder:
            self.encoder.requires_grad_(False)

    # --- what subclasses define -------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Raw output per pair (logit or similarity), before `activation`."""
        raise NotImplementedError

    def activation(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw output -> score in 0-1 (identity for cosine)."""
        return raw

    def encode(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The per-batch network pass that inference runs over padded token ids: pooled
        embeddings (bi-encoder) or logits (cross-encoder). A backend (sts.backends) stands in
        for it, passed as `encode=`."""
        raise NotImplementedError

    def score_pairs(self, texts1: Sequence[str], texts2: Sequence[str], batch_size: int, encode: Encode | None = None) -> torch.Tensor:
        """Unclipped scores of raw sentence pairs as a tensor, in input order (score_texts clips them)."""
        raise NotImplementedError

    def extra_hparams(self) -> dict[str, Any]:
        return {}

    # --- training -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> PairModule:
        """A frozen encoder also stays in eval mode (no dropout), so its features are fixed."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def on_fit_start(self) -> None:
        """Pretrained encoders load in eval mode; training needs dropout on (as in Sentence-BERT)."""
        self.train()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        raw = self(batch)
        prediction = raw if self.loss_fn.takes_logits else self.activation(raw)
        loss = self.loss_fn(prediction, batch["gold"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["gold"]))
        return loss

    def _eval_step(self, batch: dict[str, Any], split: str) -> dict[str, torch.Tensor]:
        """Scores the batch into the split's metrics; returns them (callbacks get them as outputs)."""
        scores = self.activation(self(batch)).float()
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
            self.threshold = choose_threshold(scores.cpu(), gold.cpu() >= positive_threshold, self.threshold_objective)
        metrics = pair_metrics(scores.cpu(), gold.cpu(), positive_threshold, self.threshold)
        self.last_metrics[split] = metrics
        self.log_dict({f"{split}/{k}": v for k, v in metrics.items() if k != "spearman"})
        self.log(f"{split}/spearman", metrics["spearman"], prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def head_modules(self) -> list[nn.Module]:
        """Modules created here (not pretrained); they learn at head_lr."""
        return [m for name, m in self.named_children() if name not in ("encoder", "scores", "golds", "loss_fn")]

    def _encoder_depth(self, name: str, n_layers: int) -> int:
        if "embed" in name:
            return 0
        match = _LAYER.search("." + name)
        return int(match.group(1)) + 1 if match else n_layers + 1

    def param_groups(self) -> list[dict[str, Any]]:
        """AdamW groups: encoder by depth (layer-wise decay) and decay/no-decay; head at head_lr."""
        hp = self.saved_hparams
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}

        def add(param: nn.Parameter, name: str, lr: float) -> None:
            decay = 0.0 if any(k in name for k in _NO_DECAY) else hp["weight_decay"]
            groups.setdefault((lr, decay), []).append(param)

        n_layers = getattr(self.encoder.config, "num_hidden_layers", 0)
        for name, param in self.encoder.named_parameters():
            if param.requires_grad:
                depth = self._encoder_depth(name, n_layers)
                add(param, name, hp["encoder_lr"] * hp["layerwise_lr_decay"] ** (n_layers + 1 - depth))
        for module in self.head_modules():
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
        scheduler = get_linear_schedule_with_warmup(optimizer, int(total * self.saved_hparams["warmup_ratio"]), total)
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
    def payload(self) -> dict[str, Any]:
        """Everything but the weights needed to rebuild this model: plain types only, so the
        checkpoint loads with torch.load(weights_only=True)."""
        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save_pretrained(tmp)
            files = {p.name: p.read_text(encoding="utf-8") for p in Path(tmp).iterdir() if p.is_file()}
        return {
            "format": "sts-model",
            "version": 1,
            "architecture": type(self).__name__,
            "hparams": {**self.saved_hparams, **self.extra_hparams()},
            "encoder_config": self.encoder.config.to_dict(),
            "tokenizer_files": files,
            "threshold": float(self.threshold),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sts"] = self.payload()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.threshold = float(checkpoint.get("sts", {}).get("threshold", self.threshold))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """Lightning's predict loop over raw text batches (multi-process scoring; each batch says
        the batch size to score it in)."""
        scores = self.score_pairs(batch["texts1"], batch["texts2"], batch["batch_size"])
        return {"index": batch["index"], "score": scores.clamp(0, 1).cpu()}

    # --- scoring raw text ---------------------------------------------------------------------
    @property
    def inputs(self) -> PairInputs:
        """How this model turns texts into inputs: training data, dev/test and scoring use it alike."""
        return PairInputs(self.tokenizer, self.max_length, self.joined)

    @torch.inference_mode()
    def score_texts(self, texts1: Sequence[str], texts2: Sequence[str], batch_size: int = 64, clip: bool = True, encode: Encode | None = None) -> np.ndarray:
        """Scores for raw sentence pairs, in input order; `clip` maps a cosine below 0 to 0 so
        every score lies in 0-1 (metrics use the unclipped value). `encode`: a backend's
        stand-in for `self.encode` (None: this module in torch)."""
        self.eval()
        scores = self.score_pairs(texts1, texts2, batch_size, encode)
        return (scores.clamp(0, 1) if clip else scores).cpu().numpy()
