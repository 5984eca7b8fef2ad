"""Cross-encoder: [CLS] s1 [SEP] s2 [SEP] through the encoder, a head on the [CLS] state (or the
mean of all token states, `pooling=mean`, for encoders trained with mean pooling), one logit,
sigmoid for the score. The head mirrors BertForSequenceClassification (dense + tanh
pooler, dropout, linear) and starts from the encoder's own pooler weights when it has them.

The joined input is not symmetric: (a, b) and (b, a) get different scores. `both_orders` scores
every pair in both orders and averages the two logits wherever the model measures or predicts
(dev, test, predict.py), at twice the scoring cost; training still sees each pair as given
(data.symmetric trains on both)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sts.core.inputs import JOINED, REVERSED
from sts.errors import STSError
from sts.core.model import Encode, PairModel
from sts.core.windows import LongInputs
from sts.core.pooling import POOLING_MODES, detach_pooler, pool


class CrossEncoder(PairModel):
    joined = True

    def __init__(
        self, *args: Any, pooling: str = "cls", head_dropout: float = 0.1, same_token_types: bool = False, both_orders: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.both_orders = both_orders
        if pooling not in POOLING_MODES:
            raise STSError(f"model.pooling={pooling!r}: choose one of {POOLING_MODES}")
        self.pooling = pooling
        if same_token_types:
            self._start_second_sentence_like_first()
        pooler = detach_pooler(self.encoder)
        hidden = self.encoder.config.hidden_size
        self.head_dropout = head_dropout
        self.dense = nn.Linear(hidden, hidden)
        if pooler is not None and isinstance(getattr(pooler, "dense", None), nn.Linear):
            self.dense.load_state_dict(pooler.dense.state_dict())
        self.dropout = nn.Dropout(head_dropout)
        self.classifier = nn.Linear(hidden, 1)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def _start_second_sentence_like_first(self) -> None:
        """Copy token type 0's embedding onto type 1 (the second sentence). Sentence-embedding
        checkpoints (all-MiniLM-L6-v2) were fine-tuned on single sentences, type 0 only, so type 1
        is a leftover of pre-training; from an equal start the model learns what sets B apart."""
        types = getattr(getattr(self.encoder, "embeddings", None), "token_type_embeddings", None)
        if types is None or types.num_embeddings < 2:
            raise STSError("model.same_token_types=true needs an encoder with two token types (BERT-style)")
        with torch.no_grad():
            types.weight[1] = types.weight[0]

    def extra_hparams(self) -> dict[str, Any]:
        # same_token_types acts once, at initialisation: a loaded checkpoint keeps its trained rows
        return {"pooling": self.pooling, "head_dropout": self.head_dropout, "both_orders": self.both_orders}

    def logit(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = pool(self.encoder(**features).last_hidden_state, features["attention_mask"], self.pooling)
        return self.classifier(self.dropout(torch.tanh(self.dense(pooled)))).squeeze(-1)

    def pair_logits(self, batch: dict[str, Any], encode: Encode | None = None) -> torch.Tensor:
        """The joined pair's logit, averaged with the reversed pair's when the batch has it:
        one both-orders rule for dev, test and scoring raw text. `encode`: a backend's stand-in.
        The mean is taken in fp32: under bf16 autocast it would round the two logits' average again."""
        encode = encode or self.logit
        if REVERSED in batch:
            return (encode(batch[JOINED]).float() + encode(batch[REVERSED]).float()) / 2
        return encode(batch[JOINED])

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.both_orders and not self.training:
            if REVERSED not in batch:
                raise STSError(f"model.both_orders=true: evaluation batches need the reversed pairs ({REVERSED!r}); PairDataModule.attach(..., both_orders=True) adds them")
            return self.pair_logits(batch)
        return self.pair_logits({JOINED: batch[JOINED]})

    def activation(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(raw)

    def encode(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.logit(features)

    def score_pairs(self, texts1: Sequence[str], texts2: Sequence[str], batch_size: int, encode: Encode | None = None,
                    long: LongInputs = LongInputs()) -> torch.Tensor:
        """A pair of texts read in windows (long_inputs=chunk) scores every window of text1 with
        every window of text2 and takes the max or mean (`long.reduce`) of those logits."""
        inputs = self.reading(long)
        pieces = inputs.pieces(texts1, texts2, self.both_orders)
        logits = inputs.by_length(pieces, batch_size, lambda batch: self.pair_logits(batch, encode), self.device)
        return self.activation(pieces.reduce(logits, long.reduce))


def set_both_orders(module: PairModel, value: bool | None) -> PairModel:
    """Override how a loaded model scores (predict/evaluate `both_orders=`, a soup's model config):
    None keeps the model's own setting. A bi-encoder's cosine is symmetric already."""
    if value is None:
        return module
    if not isinstance(module, CrossEncoder):
        if value:
            raise STSError(f"both_orders=true: the model is a {type(module).__name__}, whose cosine is symmetric already; only cross-encoders take it")
        return module
    module.both_orders = bool(value)
    return module
