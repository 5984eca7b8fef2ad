"""Tokenise once, pad per batch: the two steps between text and tensors.

A bi-encoder sees each side on its own (`a`, `b`); a cross-encoder sees both sides joined
(`ab`: [CLS] s1 [SEP] s2 [SEP] with token types; `ba` the reverse, to score both orders).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

log = logging.getLogger(__name__)
Features = dict[str, torch.Tensor]


def tokenize(tokenizer: Any, s1: Sequence[str], s2: Sequence[str] | None, max_length: int) -> dict[str, list[list[int]]]:
    """Token ids (and token types for pairs) without padding, truncated to `max_length`;
    warns once when anything was truncated."""
    enc = tokenizer(list(s1), list(s2) if s2 is not None else None, truncation=True, max_length=max_length, padding=False)
    truncated = sum(len(ids) >= max_length for ids in enc["input_ids"])
    if truncated:
        log.warning("%d input(s) reached encoder.max_length=%d tokens and were truncated", truncated, max_length)
    out = {"input_ids": enc["input_ids"]}
    if s2 is not None and "token_type_ids" in enc:
        out["token_type_ids"] = enc["token_type_ids"]
    return out


def tokenize_pairs(
    tokenizer: Any, s1: Sequence[str], s2: Sequence[str], max_length: int, joint: bool, both_orders: bool = False
) -> dict[str, dict[str, list[list[int]]]]:
    """Bi-encoder: each side alone (`a`, `b`). Cross-encoder: the joined pair (`ab`) and, with
    `both_orders`, the reversed one (`ba`) too."""
    if joint:
        out = {"ab": tokenize(tokenizer, s1, s2, max_length)}
        if both_orders:
            out["ba"] = tokenize(tokenizer, s2, s1, max_length)
        return out
    return {"a": tokenize(tokenizer, s1, None, max_length), "b": tokenize(tokenizer, s2, None, max_length)}


def pad(encodings: dict[str, list[list[int]]], pad_id: int) -> Features:
    """Right-pad a list of token sequences to the longest one, with its attention mask."""
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


class TokenizedPairs(Dataset):
    """Pre-tokenised pairs with gold; items are (index, {side: {field: ids}}, gold)."""

    def __init__(self, encodings: dict[str, dict[str, list[list[int]]]], gold: np.ndarray) -> None:
        self.encodings = encodings
        self.gold = torch.as_tensor(gold, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.gold)

    def lengths(self) -> list[int]:
        """Per pair, its longest token sequence (what padding a batch to it costs)."""
        return [max(len(enc["input_ids"][i]) for enc in self.encodings.values()) for i in range(len(self))]

    def __getitem__(self, i: int) -> int:
        return i


class PairCollator:
    """Turns a list of indices into a padded batch: {side: features, 'gold': tensor, 'index': tensor}."""

    def __init__(self, dataset: TokenizedPairs, pad_id: int) -> None:
        self.dataset = dataset
        self.pad_id = pad_id

    def __call__(self, index: list[int]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            side: pad({k: [v[i] for i in index] for k, v in enc.items()}, self.pad_id) for side, enc in self.dataset.encodings.items()
        }
        batch["gold"] = self.dataset.gold[index]
        batch["index"] = torch.as_tensor(index)
        return batch
