"""Scoring items as pieces: truncated inputs as before, or (long_inputs=chunk) windows that are
the tokenizer's own ids for a text that fits, read every token of a long one within max_length,
count their tokens for the server's limits and are refused beyond chunk_max_windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sts.core.inputs import FIRST, JOINED, REVERSED, PairInputs, content
from sts.core.windows import LongInputs
from sts.errors import STSError

LONG = " ".join(f"word{i % 97} and thing{i % 13}." for i in range(60))
SHORT = ["a cat sits on the mat", "two dogs"]


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_encoder)


def chunked(tokenizer, joined: bool, **settings) -> PairInputs:
    return PairInputs(tokenizer, 32, joined, LongInputs("chunk", **settings))


@pytest.mark.parametrize("joined", [False, True])
def test_chunk_gives_the_truncated_inputs_for_texts_that_fit(tokenizer, joined: bool) -> None:
    truncate, chunk = PairInputs(tokenizer, 32, joined), chunked(tokenizer, joined)
    whole = truncate.pieces(SHORT, SHORT[::-1] if joined else None, both_orders=joined)
    windows = chunk.pieces(SHORT, SHORT[::-1] if joined else None, both_orders=joined)
    assert windows.whole and windows.select([0, 1]) == whole.select([0, 1])
    assert windows.lengths().tolist() == whole.lengths().tolist() and windows.tokens().tolist() == whole.tokens().tolist()


def test_a_long_texts_windows_read_every_token_within_max_length(tokenizer) -> None:
    inputs = chunked(tokenizer, False)
    ids = content(tokenizer, [LONG])[0].tolist()
    pieces = inputs.pieces([LONG, SHORT[0]])
    windows = pieces.select(range(len(pieces.owner)))[FIRST]["input_ids"]
    own = [w for w, owner in zip(windows, pieces.owner) if owner == 0]
    assert len(ids) > 100 and all(len(w) == 32 and w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id for w in own)
    begin = [s for s, owner in zip(pieces.spans[:, 0], pieces.owner) if owner == 0]
    assert all(w[1:-1] == ids[s : s + 30] for w, s in zip(own, begin))
    assert begin[0] == 0 and begin[-1] + 30 == len(ids) and np.diff(begin)[:-1].tolist() == [30 - 7] * (len(begin) - 2)  # overlap 30 // 4
    assert pieces.tokens().tolist() == [32 * len(own), len(tokenizer(SHORT[0])["input_ids"])]


def test_a_long_pair_is_every_window_of_one_with_every_window_of_the_other(tokenizer) -> None:
    inputs = chunked(tokenizer, True)
    pieces = inputs.pieces([LONG, "a query"], [LONG[:200], LONG], both_orders=True)
    batch = pieces.select(range(len(pieces.owner)))
    first_item = pieces.spans[pieces.owner == 0]
    assert len(first_item) == len({tuple(s[:2]) for s in first_item}) * len({tuple(s[2:]) for s in first_item})
    assert all(len(ids) <= 32 for ids in batch[JOINED]["input_ids"]) and max(len(ids) for ids in batch[JOINED]["input_ids"]) == 32
    query = tokenizer("a query", add_special_tokens=False)["input_ids"]
    second = [ids for ids, owner in zip(batch[JOINED]["input_ids"], pieces.owner) if owner == 1]
    assert all(ids[1 : 1 + len(query)] == query for ids in second)  # a short query stays whole in every pair
    for joined, reversed_, types in zip(batch[JOINED]["input_ids"], batch[REVERSED]["input_ids"], batch[JOINED]["token_type_ids"]):
        assert len(joined) == len(reversed_) == len(types) and sorted(joined) == sorted(reversed_)
    assert pieces.tokens().sum() == 2 * pieces.lengths().sum()  # both orders read


def test_more_windows_than_chunk_max_windows_are_refused_in_one_line(tokenizer) -> None:
    with pytest.raises(STSError, match=r"^a text of \d+ tokens becomes \d+ windows of at most 32 tokens; at most chunk_max_windows=3 per text"):
        chunked(tokenizer, False, max_windows=3).pieces([LONG])
    with pytest.raises(STSError, match=r"^a pair of texts of \d+ and \d+ tokens becomes \d+ x \d+ = \d+ windows .* chunk_max_windows=20 per pair"):
        chunked(tokenizer, True, max_windows=20).pieces([LONG], [LONG])


def test_an_overlap_as_wide_as_the_window_is_refused_before_scoring(tokenizer) -> None:
    chunked(tokenizer, False, overlap=29).check()
    with pytest.raises(STSError, match=r"^chunk_overlap=30: must be less than this model's window of 30 tokens"):
        chunked(tokenizer, False, overlap=30).check()
    with pytest.raises(STSError, match=r"^chunk_overlap=14: must be less than this model's window of 14 tokens .*halved between the two texts"):
        chunked(tokenizer, True, overlap=14).check()


def test_pooling_and_reducing_the_pieces_of_each_item(tokenizer) -> None:
    pieces = chunked(tokenizer, False).pieces([SHORT[0], LONG, SHORT[1]])
    outputs = torch.randn(len(pieces.owner), 4)
    mean = pieces.mean(outputs)
    owner = torch.as_tensor(pieces.owner)
    for item in range(3):
        expected = outputs[owner == item].mean(0)
        torch.testing.assert_close(mean[item], expected)
    assert torch.equal(mean[0], outputs[owner == 0][0]) and torch.equal(mean[2], outputs[owner == 2][0])  # a piece alone: exactly itself
    logits = torch.randn(len(pieces.owner))
    assert pieces.reduce(logits, "max").tolist() == [float(logits[owner == i].max()) for i in range(3)]
    torch.testing.assert_close(pieces.reduce(logits, "mean"), torch.stack([logits[owner == i].mean() for i in range(3)]))


@pytest.mark.parametrize("joined", [False, True])
def test_whole_lengths_are_what_the_tokenizer_gives_uncut(tokenizer, joined: bool) -> None:
    """What TEI's truncate=false checks: a text's (or pair's) tokens with its special tokens,
    counted before truncation, so that exactly the inputs longer than max_length exceed it."""
    inputs = PairInputs(tokenizer, 16, joined)
    short, long = "the cat sat", "the cat sat on the mat and looked at the dog for a long while"
    whole = [len(tokenizer(t)["input_ids"]) for t in (short, long)]
    assert inputs.whole_lengths([short, long]).tolist() == whole and whole[1] > 16 >= whole[0]
    pairs = inputs.whole_lengths([short, short], [short, long]).tolist()
    if joined:
        assert pairs == [len(tokenizer(short, t)["input_ids"]) for t in (short, long)]
    else:  # read apart: the longer side's
        assert pairs == [whole[0], whole[1]]
