"""Siamese bi-encoder: one shared encoder embeds each sentence; cosine (or a small MLP head
over [u, v, |u-v|, u*v] when the encoder is frozen) compares the two embeddings."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sts.core.inputs import FIRST, SECOND, stack
from sts.core.model import Encode, PairModel
from sts.core.windows import LongInputs
from sts.core.pooling import detach_pooler, pool


class BiEncoder(PairModel):
    joined = False

    def __init__(self, *args: Any, pooling: str = "mean", head_hidden: int = 512, head_dropout: float = 0.1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        detach_pooler(self.encoder)
        self.pooling = pooling
        self.head_hidden, self.head_dropout = head_hidden, head_dropout
        hidden = self.encoder.config.hidden_size
        self.head = (
            nn.Sequential(nn.Linear(4 * hidden, head_hidden), nn.GELU(), nn.Dropout(head_dropout), nn.Linear(head_hidden, 1))
            if self.freeze_encoder
            else None
        )

    def extra_hparams(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "head_hidden": self.head_hidden, "head_dropout": self.head_dropout}

    def embed(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled sentence embeddings."""
        hidden = self.encoder(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
        return pool(hidden, features["attention_mask"], self.pooling)

    def encode(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embed(features)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64, encode: Encode | None = None, long: LongInputs = LongInputs()) -> torch.Tensor:
        """Pooled embeddings of raw sentences in input order (embed.py, exports)."""
        self.eval()
        return self._embed(texts, batch_size, encode or self.encode, long)

    def _embed(self, texts: Sequence[str], batch_size: int, encode: Encode, long: LongInputs) -> torch.Tensor:
        """A text longer than max_length, read in windows (long_inputs=chunk), is the mean of its
        windows' embeddings: all but a short text's one window are full (sts.core.windows.starts),
        so a plain mean weighs every window's tokens alike."""
        inputs = self.reading(long)
        pieces = inputs.pieces(texts)
        return pieces.mean(inputs.by_length(pieces, batch_size, lambda batch: encode(batch[FIRST]), self.device))

    def compare(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Raw similarity of two embedding batches: cosine, or the head's logit when frozen."""
        if self.head is None:
            return F.cosine_similarity(u.float(), v.float(), dim=-1)
        return self.head(torch.cat([u, v, (u - v).abs(), u * v], dim=-1)).squeeze(-1)

    def activation(self, raw: torch.Tensor) -> torch.Tensor:
        return raw if self.head is None else torch.sigmoid(raw)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Both sides in one encoder pass (a batch of 2n, padded to the wider side): half the
        kernel launches and weight casts of two passes, and larger matrix products."""
        u, v = self.embed(stack(batch[FIRST], batch[SECOND], self.tokenizer.pad_token_id)).chunk(2)
        return self.compare(u, v)

    def score_pairs(self, texts1: Sequence[str], texts2: Sequence[str], batch_size: int, encode: Encode | None = None,
                    long: LongInputs = LongInputs()) -> torch.Tensor:
        """Each distinct sentence is embedded once, however often it recurs."""
        unique = list(dict.fromkeys([*texts1, *texts2]))
        position = {s: i for i, s in enumerate(unique)}
        embeddings = self._embed(unique, batch_size, encode or self.encode, long)
        i1 = torch.as_tensor([position[s] for s in texts1], device=embeddings.device)
        i2 = torch.as_tensor([position[s] for s in texts2], device=embeddings.device)
        return self.activation(torch.cat([self.compare(embeddings[a], embeddings[b]) for a, b in zip(i1.split(4096), i2.split(4096))]))
