"""What bi- and cross-encoders share as plain `nn.Module`s: the encoder and its tokenizer, the
decision threshold, the payload a model file carries, and batched scoring of raw text.
Subclasses say how a batch becomes a score; training wraps a model in
`sts.training.task.PairTask` and nothing here knows about it."""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sts.core.calibration import Calibration
from sts.core.inputs import PairInputs
from sts.core.windows import LongInputs

Encode = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # a batch of padded token ids -> embeddings or logits


class PairModel(nn.Module):
    """A network that scores sentence pairs in 0-1.

    Args:
        encoder: a Hugging Face encoder (AutoModel).
        tokenizer: its tokenizer; travels with model files.
        max_length: tokens per input after truncation.
        freeze_encoder: encoder weights get no gradient and stay in eval mode; only the head learns.
    """

    # cross-encoders read the two sentences joined in one input, bi-encoders each on its own
    joined: ClassVar[bool] = False

    def __init__(self, encoder: nn.Module, tokenizer: Any, max_length: int = 128, freeze_encoder: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.freeze_encoder = freeze_encoder
        self.threshold = 0.5
        # P(similar | score), fitted on dev (sts.core.calibration); None: scores are not calibrated
        self.calibration: Calibration | None = None
        # what a loaded model file recorded: its metrics and how it was trained (sts.io.checkpoint.load fills them in)
        self.checkpoint_metrics: dict[str, Any] = {}
        self.trained_with: dict[str, Any] = {}
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
        embeddings (bi-encoder) or logits (cross-encoder). A backend (sts.core.backends) stands
        in for it, passed as `encode=`."""
        raise NotImplementedError

    def score_pairs(self, texts1: Sequence[str], texts2: Sequence[str], batch_size: int, encode: Encode | None = None,
                    long: LongInputs = LongInputs()) -> torch.Tensor:
        """Unclipped scores of raw sentence pairs as a tensor, in input order (score_texts clips
        them); `long`: how texts longer than max_length are read."""
        raise NotImplementedError

    def extra_hparams(self) -> dict[str, Any]:
        return {}

    # --- state ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the weights are (the CPU for a model without any: an exported graph's stand-in)."""
        weight = next(self.parameters(), None)
        return weight.device if weight is not None else torch.device("cpu")

    def train(self, mode: bool = True) -> PairModel:
        """A frozen encoder also stays in eval mode (no dropout), so its features are fixed."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def head_modules(self) -> list[nn.Module]:
        """Modules created here (not pretrained); they learn at the head's learning rate."""
        return [m for name, m in self.named_children() if name != "encoder"]

    def hparams(self) -> dict[str, Any]:
        """The architecture's hyper-parameters (sts.core.hparams.ARCHITECTURE): what rebuilds it."""
        return {"max_length": self.max_length, "freeze_encoder": self.freeze_encoder, **self.extra_hparams()}

    def payload(self, training: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything but the weights needed to rebuild this model, plus how it was trained
        (`training`, a record): plain types only, so the file loads with torch.load(weights_only=True)."""
        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save_pretrained(tmp)
            files = {p.name: p.read_text(encoding="utf-8") for p in Path(tmp).iterdir() if p.is_file()}
        return {
            "format": "sts-model",
            "version": 1,
            "architecture": type(self).__name__,
            "hparams": {**self.hparams(), **(training or {})},
            "encoder_config": self.encoder.config.to_dict(),
            "tokenizer_files": files,
            "threshold": float(self.threshold),
            "calibration": self.calibration.record if self.calibration is not None else None,
        }

    # --- scoring raw text ---------------------------------------------------------------------
    @property
    def inputs(self) -> PairInputs:
        """How this model turns texts into inputs: training data, dev/test and scoring use it alike."""
        return PairInputs(self.tokenizer, self.max_length, self.joined)

    def reading(self, long: LongInputs) -> PairInputs:
        """`inputs` with texts longer than max_length read as `long` says (scoring)."""
        return PairInputs(self.tokenizer, self.max_length, self.joined, long)

    @torch.inference_mode()
    def score_texts(self, texts1: Sequence[str], texts2: Sequence[str], batch_size: int = 64, clip: bool = True, encode: Encode | None = None,
                    long: LongInputs = LongInputs()) -> np.ndarray:
        """Scores for raw sentence pairs, in input order; `clip` maps a cosine below 0 to 0 so
        every score lies in 0-1 (metrics use the unclipped value). `encode`: a backend's
        stand-in for `self.encode` (None: this module in torch). `long`: truncate or chunk texts
        longer than max_length (sts.core.windows)."""
        self.eval()
        scores = self.score_pairs(texts1, texts2, batch_size, encode, long)
        return (scores.clamp(0, 1) if clip else scores).cpu().numpy()
