"""Texts to model inputs, in one place for training, evaluation and scoring: tokenise once, order
by token length, pad per batch, and the batch layout the models read.

A bi-encoder reads each sentence on its own (sides FIRST `a` and SECOND `b`); a cross-encoder
reads both joined (JOINED `ab`: [CLS] s1 [SEP] s2 [SEP] with token types; REVERSED `ba`, the
pair the other way round, to score both orders).

torch is imported only where tensors are made: the HTTP front-end of the server counts a request's
tokens with `PairInputs` and must not load torch (a few hundred MiB in every HTTP process).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sts.errors import STSError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
Features = dict[str, "torch.Tensor"]
Encodings = dict[str, list[list[int]]]  # token ids (and token types), unpadded, one list per input
FIRST, SECOND, JOINED, REVERSED = "a", "b", "ab", "ba"


def tokenize(tokenizer: Any, s1: Sequence[str], s2: Sequence[str] | None, max_length: int) -> Encodings:
    """Token ids (and token types for pairs) without padding, truncated to `max_length`;
    warns once when anything was truncated. A panic in a native tokenizer (pyo3's PanicException
    is a BaseException: a catastrophic regex in tokenizer.json, one crafted text) becomes an
    STSError in one line, so that no command or server worker dies of it."""
    try:
        enc = tokenizer(list(s1), list(s2) if s2 is not None else None, truncation=True, max_length=max_length, padding=False)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 (native panics are not Exceptions)
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise STSError(f"the tokenizer failed ({type(e).__name__}: {first_line})") from None
    truncated = sum(len(ids) >= max_length for ids in enc["input_ids"])
    if truncated:
        log.warning("%d input(s) reached encoder.max_length=%d tokens and were truncated", truncated, max_length)
    out = {"input_ids": enc["input_ids"]}
    if s2 is not None and "token_type_ids" in enc:
        out["token_type_ids"] = enc["token_type_ids"]
    return out


def pad(encodings: Encodings, pad_id: int) -> Features:
    """Right-pad a list of token sequences to the longest one, with its attention mask."""
    import torch

    ids = encodings["input_ids"]
    width = max(len(x) for x in ids)
    out = {"input_ids": torch.full((len(ids), width), pad_id, dtype=torch.long), "attention_mask": torch.zeros((len(ids), width), dtype=torch.long)}
    if "token_type_ids" in encodings:
        out["token_type_ids"] = torch.zeros((len(ids), width), dtype=torch.long)
    for i, seq in enumerate(ids):
        out["input_ids"][i, : len(seq)] = torch.as_tensor(seq)
        out["attention_mask"][i, : len(seq)] = 1
        if "token_type_ids" in encodings:
            out["token_type_ids"][i, : len(seq)] = torch.as_tensor(encodings["token_type_ids"][i])
    return out


def stack(first: Features, second: Features, pad_id: int) -> Features:
    """Two padded batches as one, the narrower right-padded (pad_id, attention mask 0) to the wider."""
    import torch
    import torch.nn.functional as F

    width = max(first["input_ids"].shape[1], second["input_ids"].shape[1])

    def widen(features: Features, key: str) -> torch.Tensor:
        return F.pad(features[key], (0, width - features[key].shape[1]), value=pad_id if key == "input_ids" else 0)

    return {k: torch.cat([widen(first, k), widen(second, k)]) for k in first.keys() & second.keys()}


def lengths(sides: dict[str, Encodings]) -> list[int]:
    """Per item, its longest token sequence over the sides (what padding a batch to it costs)."""
    columns = [enc["input_ids"] for enc in sides.values()]
    return [max(len(c[i]) for c in columns) for i in range(len(columns[0]))]


def select(sides: dict[str, Encodings], index: Sequence[int]) -> dict[str, Encodings]:
    return {side: {k: [v[i] for i in index] for k, v in enc.items()} for side, enc in sides.items()}


@dataclass(frozen=True)
class PairInputs:
    """How one model reads text: its tokenizer, truncation length, and whether the two sentences
    are joined (cross-encoder) or read apart (bi-encoder). Training batches, dev and test batches
    and scoring of raw text all go through it."""

    tokenizer: Any
    max_length: int
    joined: bool

    def texts(self, texts1: Sequence[str], texts2: Sequence[str] | None = None) -> Encodings:
        """Single sentences (texts2 None) or joined pairs."""
        return tokenize(self.tokenizer, texts1, texts2, self.max_length)

    def pairs(self, s1: Sequence[str], s2: Sequence[str], both_orders: bool = False) -> dict[str, Encodings]:
        """Bi-encoder: each side alone (FIRST, SECOND). Cross-encoder: the joined pair (JOINED) and,
        with `both_orders`, the reversed one (REVERSED) too."""
        if self.joined:
            out = {JOINED: self.texts(s1, s2)}
            if both_orders:
                out[REVERSED] = self.texts(s2, s1)
            return out
        return {FIRST: self.texts(s1), SECOND: self.texts(s2)}

    def batch(self, sides: dict[str, Encodings], index: Sequence[int]) -> dict[str, Features]:
        """The padded batch of items `index`: {side: features}."""
        return {side: pad(enc, self.tokenizer.pad_token_id) for side, enc in select(sides, index).items()}

    def by_length(self, sides: dict[str, Encodings], batch_size: int, fn: Callable[[dict[str, Features]], torch.Tensor], device: Any) -> torch.Tensor:
        """Run `fn` over length-sorted batches (little padding); results in input order."""
        import torch

        order = np.argsort(lengths(sides), kind="stable")
        outputs: list[torch.Tensor] = []
        for start in range(0, len(order), batch_size):
            batch = self.batch(sides, order[start : start + batch_size])
            outputs.append(fn({side: {k: t.to(device) for k, t in features.items()} for side, features in batch.items()}).float())
        result = torch.cat(outputs)
        restored = torch.empty_like(result)
        restored[torch.as_tensor(order, device=result.device)] = result
        return restored


class TokenizedPairs:
    """Pre-tokenised pairs with gold; items are indices, batched by PairCollator (a map-style
    data set: DataLoader needs only __len__ and __getitem__)."""

    def __init__(self, encodings: dict[str, Encodings], gold: np.ndarray) -> None:
        import torch

        self.encodings = encodings
        self.gold = torch.as_tensor(gold, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.gold)

    def lengths(self) -> list[int]:
        return lengths(self.encodings)

    def __getitem__(self, i: int) -> int:
        return i


class PairCollator:
    """Turns a list of indices into a padded batch: {side: features, 'gold': tensor, 'index': tensor}."""

    def __init__(self, dataset: TokenizedPairs, inputs: PairInputs) -> None:
        self.dataset = dataset
        self.inputs = inputs

    def __call__(self, index: list[int]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = dict(self.inputs.batch(self.dataset.encodings, index))
        batch["gold"] = self.dataset.gold[index]
        batch["index"] = torch.as_tensor(index)
        return batch
