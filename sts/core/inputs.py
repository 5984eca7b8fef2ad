"""Texts to model inputs, in one place for training, evaluation and scoring: tokenise once, order
by token length, pad per batch, and the batch layout the models read.

A bi-encoder reads each sentence on its own (sides FIRST `a` and SECOND `b`); a cross-encoder
reads both joined (JOINED `ab`: [CLS] s1 [SEP] s2 [SEP] with token types; REVERSED `ba`, the
pair the other way round, to score both orders).

Scoring reads items (texts, or pairs) as `Pieces`: the encoder inputs standing for them, one per
item (truncated at max_length), or with `long_inputs=chunk` (sts.core.windows) one per window of
a long item, built a batch at a time from the item's token ids, so memory holds the ids, not
every window's padded input. The models pool (bi-encoder) or reduce (cross-encoder) the pieces'
outputs back to one per item.

torch is imported only where tensors are made: the HTTP front-end of the server counts a request's
tokens with `PairInputs` and must not load torch (a few hundred MiB in every HTTP process).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from sts.core.windows import LongInputs, Template, split, starts
from sts.errors import STSError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
Features = dict[str, "torch.Tensor"]
Encodings = dict[str, list[list[int]]]  # token ids (and token types), unpadded, one list per input
FIRST, SECOND, JOINED, REVERSED = "a", "b", "ab", "ba"


def _call(tokenizer: Any, *args: Any, **kwargs: Any) -> Any:
    """The tokenizer's output; a panic in a native tokenizer (pyo3's PanicException is a
    BaseException: a catastrophic regex in tokenizer.json, one crafted text) becomes an STSError
    in one line, so that no command or server worker dies of it."""
    try:
        return tokenizer(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 (native panics are not Exceptions)
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise STSError(f"the tokenizer failed ({type(e).__name__}: {first_line})") from None


def tokenize(tokenizer: Any, s1: Sequence[str], s2: Sequence[str] | None, max_length: int) -> Encodings:
    """Token ids (and token types for pairs) without padding, truncated to `max_length`;
    warns once when anything was truncated, naming the remedy."""
    enc = _call(tokenizer, list(s1), list(s2) if s2 is not None else None, truncation=True, max_length=max_length, padding=False)
    truncated = sum(len(ids) >= max_length for ids in enc["input_ids"])
    if truncated:
        log.warning("%d input(s) reached encoder.max_length=%d tokens and were truncated; long_inputs=chunk reads them whole, in overlapping windows",
                    truncated, max_length)
    out = {"input_ids": enc["input_ids"]}
    if s2 is not None and "token_type_ids" in enc:
        out["token_type_ids"] = enc["token_type_ids"]
    return out


def content(tokenizer: Any, texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's token ids, whole and without special tokens (what windows are cut from)."""
    enc = _call(tokenizer, list(texts), add_special_tokens=False, truncation=False, padding=False, verbose=False)
    return [np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]]


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


class Pieces:
    """n items (texts, or pairs) as the encoder inputs that stand for them: `owner[p]` is the item
    of piece p; `lengths` what each piece costs to pad to, `select` the token ids of some pieces
    ({side: encodings}), `tokens` each item's tokens over all its pieces and sides."""

    n: int
    owner: np.ndarray

    def lengths(self) -> np.ndarray:
        raise NotImplementedError

    def select(self, index: Sequence[int]) -> dict[str, Encodings]:
        raise NotImplementedError

    def tokens(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def whole(self) -> bool:
        """One piece per item, in item order: outputs are the items' own."""
        return len(self.owner) == self.n

    def mean(self, outputs: torch.Tensor) -> torch.Tensor:
        """Each item's mean of its pieces' outputs (rows); an item of one piece gets that piece's
        output exactly (0 + x, divided by 1)."""
        import torch

        if self.whole:
            return outputs
        owner = torch.as_tensor(self.owner, device=outputs.device)
        sums = torch.zeros((self.n, *outputs.shape[1:]), dtype=outputs.dtype, device=outputs.device).index_add_(0, owner, outputs)
        counts = torch.bincount(owner, minlength=self.n).to(outputs.dtype)
        return sums / counts.view(-1, *[1] * (outputs.dim() - 1))

    def reduce(self, outputs: torch.Tensor, how: str) -> torch.Tensor:
        """Each item's max or mean of its pieces' outputs (scalars)."""
        import torch

        if self.whole or how == "mean":
            return self.mean(outputs)
        owner = torch.as_tensor(self.owner, device=outputs.device)
        return torch.full((self.n,), -torch.inf, dtype=outputs.dtype, device=outputs.device).scatter_reduce_(0, owner, outputs, "amax")


class Whole(Pieces):
    """Each item as one input, truncated at max_length (long_inputs=truncate)."""

    def __init__(self, sides: dict[str, Encodings]) -> None:
        self.sides = sides
        self.n = len(next(iter(sides.values()))["input_ids"])
        self.owner = np.arange(self.n)

    def lengths(self) -> np.ndarray:
        return np.asarray(lengths(self.sides), dtype=np.int64)

    def select(self, index: Sequence[int]) -> dict[str, Encodings]:
        return select(self.sides, index)

    def tokens(self) -> np.ndarray:
        return np.sum([[len(ids) for ids in enc["input_ids"]] for enc in self.sides.values()], axis=0)


@dataclass
class Windows(Pieces):
    """Items as windows of their token ids (long_inputs=chunk): `texts` holds each item's text
    (one text per item) or texts1 and texts2 (pairs) as ids without special tokens; `spans`
    each piece's [start, end) in every one of them; the template adds the special tokens. A
    pair piece joins a window of text1 with one of text2; with `both_orders` also the other way round."""

    n: int
    owner: np.ndarray
    texts: list[list[np.ndarray]]
    spans: np.ndarray  # pieces x (2 x len(texts))
    template: Template
    both_orders: bool = False
    sides: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.sides = (FIRST,) if len(self.texts) == 1 else (JOINED, REVERSED) if self.both_orders else (JOINED,)

    def lengths(self) -> np.ndarray:
        specials = self.template.single_specials if len(self.texts) == 1 else self.template.pair_specials
        return specials + (self.spans[:, 1::2] - self.spans[:, 0::2]).sum(axis=1)

    def _window(self, side: int, piece: int) -> list[int]:
        start, end = self.spans[piece, 2 * side : 2 * side + 2]
        return self.texts[side][self.owner[piece]][start:end].tolist()

    def select(self, index: Sequence[int]) -> dict[str, Encodings]:
        if len(self.texts) == 1:
            return {FIRST: {"input_ids": [self.template.one(self._window(0, p)) for p in index]}}
        out: dict[str, Encodings] = {}
        windows = [(self._window(0, p), self._window(1, p)) for p in index]
        for side in self.sides:
            joined = [self.template.two(*(w if side == JOINED else w[::-1])) for w in windows]
            out[side] = {"input_ids": [ids for ids, _ in joined]}
            if self.template.pair_types is not None:
                out[side]["token_type_ids"] = [types for _, types in joined]
        return out

    def tokens(self) -> np.ndarray:
        return np.bincount(self.owner, weights=self.lengths() * len(self.sides), minlength=self.n).astype(np.int64)


@dataclass(frozen=True)
class PairInputs:
    """How one model reads text: its tokenizer, truncation length, whether the two sentences
    are joined (cross-encoder) or read apart (bi-encoder), and what happens to a text longer than
    max_length when scoring (`long`: truncated, or read in windows). Training batches, dev and
    test batches and scoring of raw text all go through it; training always truncates."""

    tokenizer: Any
    max_length: int
    joined: bool
    long: LongInputs = LongInputs()

    def texts(self, texts1: Sequence[str], texts2: Sequence[str] | None = None) -> Encodings:
        """Single sentences (texts2 None) or joined pairs, truncated."""
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

    # --- scoring: items as pieces ---------------------------------------------------------------
    @cached_property
    def template(self) -> Template:
        return Template.of(self.tokenizer)

    @property
    def window(self) -> int:
        """Tokens of text in a window: a single text's, or (cross-encoder) the least a windowed
        text of a pair gets (half of what the pair's special tokens leave)."""
        if self.joined:
            return (self.max_length - self.template.pair_specials) // 2
        return self.max_length - self.template.single_specials

    def check(self) -> None:
        """Refuse, in one line, settings under which no window can be cut (before any scoring)."""
        if not self.long.chunk:
            return
        if self.window < 1:
            raise STSError(f"long_inputs=chunk: encoder.max_length={self.max_length} leaves no room for text between the special tokens")
        if self.long.overlap is not None and self.long.overlap >= self.window:
            raise STSError(f"chunk_overlap={self.long.overlap}: must be less than this model's window of {self.window} tokens "
                           f"(encoder.max_length={self.max_length} less the special tokens{', halved between the two texts' if self.joined else ''})")

    def pieces(self, texts1: Sequence[str], texts2: Sequence[str] | None = None, both_orders: bool = False) -> Pieces:
        """Single texts (texts2 None), or joined pairs (with `both_orders` also reversed), as
        the encoder inputs scoring runs: truncated, or windows (long_inputs=chunk)."""
        if not self.long.chunk:
            if texts2 is None:
                return Whole({FIRST: self.texts(texts1)})
            return Whole(self.pairs(texts1, texts2, both_orders))
        if texts2 is None:
            return self._windows([content(self.tokenizer, texts1)], both_orders)
        return self._windows([content(self.tokenizer, texts1), content(self.tokenizer, texts2)], both_orders)

    def whole_lengths(self, texts1: Sequence[str], texts2: Sequence[str] | None = None) -> np.ndarray:
        """Per item, the tokens the encoder would read were nothing cut (special tokens included):
        a text's, a joined pair's, or (bi-encoder pairs) its longer side's. Above max_length, an
        item is truncated (or windowed, long_inputs=chunk)."""
        single = self.template.single_specials
        if texts2 is None:
            return np.asarray([len(ids) + single for ids in content(self.tokenizer, texts1)], dtype=np.int64)
        one, two = content(self.tokenizer, texts1), content(self.tokenizer, texts2)
        if self.joined:
            return np.asarray([len(a) + len(b) + self.template.pair_specials for a, b in zip(one, two)], dtype=np.int64)
        return np.asarray([max(len(a), len(b)) + single for a, b in zip(one, two)], dtype=np.int64)

    def work(self, texts1: Sequence[str], texts2: Sequence[str] | None = None, both_orders: bool = False) -> int:
        """Tokens the encoder reads to score these texts (texts2 None) or pairs: a request's cost
        (a cross-encoder's with `both_orders` reads each pair twice)."""
        if texts2 is None or not self.joined:
            return int(sum(self.pieces(texts).tokens().sum() for texts in ([texts1] if texts2 is None else [texts1, texts2])))
        return int(self.pieces(texts1, texts2, both_orders).tokens().sum())

    def _windows(self, texts: list[list[np.ndarray]], both_orders: bool) -> Windows:
        """Each item's windows (a pair's: every window of text1 with every window of text2)."""
        single = len(texts) == 1
        budget = self.max_length - (self.template.single_specials if single else self.template.pair_specials)
        owners, spans = [], []
        for item, ids in enumerate(zip(*texts)):
            sizes = [min(len(ids[0]), budget)] if single else split(budget, len(ids[0]), len(ids[1]))
            bounds = []
            for length, size in zip((len(x) for x in ids), sizes):
                begin = starts(length, size, self.long.overlap_for(size))
                bounds.append(np.stack([begin, np.minimum(begin + size, length)], axis=1))
            count = int(np.prod([len(b) for b in bounds]))
            if count > self.long.max_windows:
                shape = " x ".join(str(len(b)) for b in bounds)
                what = f"a text of {len(ids[0])} tokens" if single else f"a pair of texts of {len(ids[0])} and {len(ids[1])} tokens"
                raise STSError(f"{what} becomes {shape}{'' if single else f' = {count}'} windows of at most {self.max_length} tokens; "
                               f"at most chunk_max_windows={self.long.max_windows} per {'text' if single else 'pair'} (raise it, or long_inputs=truncate)")
            grid = bounds[0] if single else np.concatenate([np.repeat(bounds[0], len(bounds[1]), axis=0), np.tile(bounds[1], (len(bounds[0]), 1))], axis=1)
            spans.append(grid)
            owners.append(np.full(len(grid), item, dtype=np.int64))
        n = len(texts[0])
        width = 2 * len(texts)
        return Windows(n, np.concatenate(owners) if owners else np.empty(0, np.int64), texts,
                       np.concatenate(spans) if spans else np.empty((0, width), np.int64), self.template, both_orders)

    def batch(self, sides: dict[str, Encodings], index: Sequence[int]) -> dict[str, Features]:
        """The padded batch of items `index`: {side: features}."""
        return {side: pad(enc, self.tokenizer.pad_token_id) for side, enc in select(sides, index).items()}

    def by_length(self, pieces: Pieces, batch_size: int, fn: Callable[[dict[str, Features]], torch.Tensor], device: Any) -> torch.Tensor:
        """Run `fn` over length-sorted batches of the pieces (little padding, at most batch_size x
        max_length tokens each); one output per piece, in piece order."""
        import torch

        order = np.argsort(pieces.lengths(), kind="stable")
        outputs: list[torch.Tensor] = []
        for start in range(0, len(order), batch_size):
            batch = {side: pad(enc, self.tokenizer.pad_token_id) for side, enc in pieces.select(order[start : start + batch_size]).items()}
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
