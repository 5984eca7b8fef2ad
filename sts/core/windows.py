"""Texts longer than a model reads, as overlapping windows (`long_inputs=chunk`): the settings,
where the windows start, how a cross-encoder's budget is split between its two texts, and where a
tokenizer puts its special tokens around a window. Pure arithmetic on token ids; `sts.core.inputs`
turns it into encoder inputs and the models pool or reduce what the windows give."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sts.core.checks import Invalid, Rule, choice, integer, optional, shown
from sts.errors import STSError

TRUNCATE, CHUNK = "truncate", "chunk"
MODES = (TRUNCATE, CHUNK)
REDUCTIONS = ("max", "mean")
# the option of each field, and its rule: one place for the commands' checks (sts.config.options) and sts.load's
OPTIONS = {"mode": "long_inputs", "overlap": "chunk_overlap", "reduce": "chunk_reduce", "max_windows": "chunk_max_windows"}
RULES: dict[str, Rule] = {
    "long_inputs": choice(*MODES),
    "chunk_overlap": optional(integer(0, 8192)),
    "chunk_reduce": choice(*REDUCTIONS),
    "chunk_max_windows": integer(1, 10**7),
}


@dataclass(frozen=True)
class LongInputs:
    """How a text longer than `max_length` tokens is read.

    mode: truncate (its first max_length tokens) or chunk (windows of max_length tokens, special
    tokens included, every token read). overlap: tokens each window repeats from the one before,
    so that a sentence cut at one window's edge is whole in the next; None = a quarter of the
    window. reduce: how a cross-encoder's window pairs make one score (max or mean of their
    logits); a bi-encoder always averages its windows' embeddings. max_windows: the most encoder
    inputs one item may become (a text's windows; a pair's windows of text1 x windows of text2),
    beyond which it is refused, so one input cannot cost without bound."""

    mode: str = TRUNCATE
    overlap: int | None = None
    reduce: str = "max"
    max_windows: int = 4096

    def __post_init__(self) -> None:
        for field, option in OPTIONS.items():
            value = getattr(self, field)
            try:
                object.__setattr__(self, field, RULES[option](value))  # normalised: "32" from a YAML string is 32
            except Invalid as e:
                raise STSError(f"{option}={shown(value)} {e}") from None

    @classmethod
    def of(cls, value: str | LongInputs | None) -> LongInputs:
        """sts.load's `long_inputs`: a mode name, the settings themselves, or None (truncate)."""
        if value is None:
            return cls()
        return value if isinstance(value, LongInputs) else cls(mode=value)

    @property
    def chunk(self) -> bool:
        return self.mode == CHUNK

    def overlap_for(self, window: int) -> int:
        """The overlap of windows of `window` tokens (a quarter of it by default)."""
        return window // 4 if self.overlap is None else self.overlap


def starts(length: int, window: int, overlap: int) -> np.ndarray:
    """Where the windows of a text of `length` tokens start: every window - overlap tokens, the
    last one ending at the text's end, so every window is full and every token is in one."""
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    step = max(window - overlap, 1)
    return np.append(np.arange(0, length - window, step, dtype=np.int64), length - window)


def split(budget: int, first: int, second: int) -> tuple[int, int]:
    """The window sizes of a pair's two texts (`first` and `second` tokens) in `budget` tokens:
    both whole when they fit; else a text shorter than half the budget stays whole and the other
    gets the rest, and two long texts get half each. A windowed text's window is then never
    shorter than budget // 2."""
    if first + second <= budget:
        return first, second
    a = min(first, max((budget + 1) // 2, budget - second))
    return a, min(second, budget - a)


@dataclass(frozen=True)
class Template:
    """Where a tokenizer puts its special tokens around one text (prefix, suffix) and two
    (prefix, middle, suffix, with each part's token type), read from its own output on probe
    texts, so a window gets exactly the tokens the tokenizer would give it."""

    prefix: list[int]
    suffix: list[int]
    pair_ids: tuple[list[int], list[int], list[int]]
    pair_types: tuple[list[int], int, list[int], int, list[int]] | None

    @property
    def single_specials(self) -> int:
        return len(self.prefix) + len(self.suffix)

    @property
    def pair_specials(self) -> int:
        return sum(len(part) for part in self.pair_ids)

    def one(self, ids: list[int]) -> list[int]:
        return [*self.prefix, *ids, *self.suffix]

    def two(self, first: list[int], second: list[int]) -> tuple[list[int], list[int] | None]:
        """Token ids of the joined pair, and its token types (None when the tokenizer has none)."""
        prefix, middle, suffix = self.pair_ids
        ids = [*prefix, *first, *middle, *second, *suffix]
        if self.pair_types is None:
            return ids, None
        t_prefix, t_first, t_middle, t_second, t_suffix = self.pair_types
        return ids, [*t_prefix, *[t_first] * len(first), *t_middle, *[t_second] * len(second), *t_suffix]

    @classmethod
    def of(cls, tokenizer: Any) -> Template:
        """Read from the tokenizer; one line when its output is not a text between fixed special tokens."""
        probes = [("a cat sat", "two dogs ran on the grass"), ("the mouse", "a man is playing a guitar loudly")]
        found = cls._read(tokenizer, *probes[0])
        for first, second in probes:
            one, two = tokenizer(first), tokenizer(first, second)
            content = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in (first, second)]
            ids, types = found.two(*content)
            if found.one(content[0]) != one["input_ids"] or ids != two["input_ids"] or types != two.get("token_type_ids", types):
                raise STSError(f"long_inputs=chunk: cannot tell where {type(tokenizer).__name__} puts its special tokens; use long_inputs=truncate")
        return found

    @classmethod
    def _read(cls, tokenizer: Any, first: str, second: str) -> Template:
        a, b = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in (first, second))
        one = tokenizer(first)["input_ids"]
        i = _find(one, a)
        two = tokenizer(first, second)
        ids, types = two["input_ids"], two.get("token_type_ids")
        j = _find(ids, a)
        k = _find(ids, b, j + len(a))
        if min(i, j, k) < 0:
            raise STSError(f"long_inputs=chunk: {type(tokenizer).__name__} changes a text's tokens when it adds special tokens; use long_inputs=truncate")
        parts = (ids[:j], ids[j + len(a) : k], ids[k + len(b) :])
        pair_types = None if types is None else (types[:j], types[j], types[j + len(a) : k], types[k], types[k + len(b) :])
        return cls(one[:i], one[i + len(a) :], parts, pair_types)


def _find(haystack: list[int], needle: list[int], start: int = 0) -> int:
    """The first index from `start` where `needle` occurs in `haystack`, or -1."""
    for i in range(start, len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            return i
    return -1
