"""long_inputs=chunk's arithmetic: windows cover every token with the overlap asked for, a pair's
budget is split so both texts fit, special tokens go where the tokenizer puts them, and the
settings are checked in one line naming the option."""
from __future__ import annotations

import pytest

from sts.core.windows import LongInputs, Template, split, starts
from sts.errors import STSError


@pytest.mark.parametrize(("length", "window", "overlap"), [(1, 8, 2), (8, 8, 2), (9, 8, 2), (100, 8, 2), (100, 8, 0), (101, 30, 7), (1000, 126, 31), (57, 10, 9)])
def test_windows_are_full_cover_every_token_and_overlap_as_asked(length: int, window: int, overlap: int) -> None:
    begin = starts(length, window, overlap).tolist()
    spans = [(s, min(s + window, length)) for s in begin]
    assert begin[0] == 0 and spans[-1][1] == length
    assert sorted({t for s, e in spans for t in range(s, e)}) == list(range(length))  # every token, none beyond
    if length <= window:
        assert spans == [(0, length)]
        return
    assert all(e - s == window for s, e in spans)  # every window full, the last ending at the text's end
    steps = [b - a for a, b in zip(begin, begin[1:])]
    assert all(step == window - overlap for step in steps[:-1]) and 0 < steps[-1] <= window - overlap
    assert len(begin) == -(-(length - window) // (window - overlap)) + 1  # no more windows than needed


@pytest.mark.parametrize(("budget", "first", "second", "expected"), [
    (29, 10, 12, (10, 12)),  # both fit: whole
    (29, 5, 100, (5, 24)),  # a short query stays whole, the document gets the rest
    (29, 100, 3, (26, 3)),
    (29, 100, 100, (15, 14)),  # two long texts: half each
    (29, 20, 100, (15, 14)),  # longer than half each: half each
])
def test_a_pairs_budget_is_split_so_both_fit(budget: int, first: int, second: int, expected: tuple[int, int]) -> None:
    a, b = split(budget, first, second)
    assert (a, b) == expected and a + b <= budget
    assert (a == first or a >= budget // 2) and (b == second or b >= budget // 2)


def test_the_template_puts_special_tokens_where_the_tokenizer_does(tiny_encoder: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    template = Template.of(tokenizer)
    first, second = "A man is playing a guitar on the stage.", "Nobody plays anything, anywhere."
    a, b = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in (first, second))
    assert template.one(a) == tokenizer(first)["input_ids"]
    joined = tokenizer(first, second)
    assert template.two(a, b) == (joined["input_ids"], joined["token_type_ids"])
    assert (template.single_specials, template.pair_specials) == (2, 3)


def test_a_tokenizer_that_hides_its_text_is_refused_in_one_line() -> None:
    def scrambling(text, pair=None, add_special_tokens=True):  # special tokens change the text's own ids
        ids = [len(text)] if not add_special_tokens else [0, len(text) + 1, 2]
        return {"input_ids": ids}

    with pytest.raises(STSError, match=r"^long_inputs=chunk: .* use long_inputs=truncate$"):
        Template.of(scrambling)


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"mode": "windows"}, "long_inputs='windows' must be one of truncate, chunk"),
    ({"overlap": -1}, "chunk_overlap=-1 must be an integer in [0, 8192] (or null)"),
    ({"reduce": "min"}, "chunk_reduce='min' must be one of max, mean"),
    ({"max_windows": 0}, "chunk_max_windows=0 must be an integer in [1, 10000000]"),
])
def test_bad_settings_are_one_line_naming_the_option(kwargs: dict, names: str) -> None:
    with pytest.raises(STSError) as e:
        LongInputs(**kwargs)
    assert str(e.value) == names


def test_settings_from_a_yaml_string_are_normalised_and_a_mode_name_is_enough() -> None:
    assert LongInputs("chunk", overlap="32").overlap == 32  # type: ignore[arg-type]
    assert LongInputs.of("chunk") == LongInputs(mode="chunk") and LongInputs.of(None) == LongInputs()
    assert LongInputs().overlap_for(126) == 31 and LongInputs(overlap=0).overlap_for(126) == 0
