from pathlib import Path

import numpy as np
import pytest

from sts.data.readers import read_pairs
from sts.errors import InputError
from sts.resources import resource


@pytest.mark.parametrize(
    "name, fmt, n, binary",
    [
        ("stsb/sts-train.csv", "stsb", 5749, False),
        ("stsb/sts-dev.csv", "stsb", 1500, False),
        ("stsb/sts-test.csv", "stsb", 1379, False),
        ("sick/SICK_train.txt", "sick", 4500, False),
        ("sick/SICK_trial.txt", "sick", 500, False),
        ("msrp/msr_paraphrase_train.txt", "msrp", 4076, True),
    ],
)
def test_bundled_files_read_completely(name: str, fmt: str, n: int, binary: bool) -> None:
    pairs = read_pairs(resource(name), fmt, (1, 5) if fmt == "sick" else (0, 5))
    assert len(pairs) == n and pairs.binary is binary
    assert 0.0 <= pairs.gold.min() and pairs.gold.max() <= 1.0
    assert all(s.strip() for s in pairs.sentence1 + pairs.sentence2)


def test_stsb_quotes_and_extra_fields_kept_raw(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text('main-news\tf\t2012\t1\t2.5\tHe said "hi\tShe said hi."\tsrc\tlicence\n', encoding="utf-8")
    pairs = read_pairs(f, "stsb")
    assert pairs.sentence1 == ['He said "hi'] and pairs.sentence2 == ['She said hi."']
    assert pairs.gold[0] == pytest.approx(0.5) and pairs.meta["genre"] == ["news"]


def test_msrp_byte_order_mark_and_label(tmp_path: Path) -> None:
    f = tmp_path / "m.txt"
    f.write_bytes("\ufeff1\t1\t2\tA \"quoted\" one.\tAnother.\n0\t3\t4\tX.\tY.\n".encode("utf-8"))
    pairs = read_pairs(f, "msrp")
    np.testing.assert_array_equal(pairs.gold, [1.0, 0.0])
    assert pairs.binary and pairs.sentence1[0] == 'A "quoted" one.'


def test_sick_score_normalised_from_one_to_five(tmp_path: Path) -> None:
    f = tmp_path / "sick.txt"
    f.write_text("pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n1\tA.\tB.\t1.0\tNEUTRAL\n2\tC.\tD.\t5.0\tENTAILMENT\n")
    pairs = read_pairs(f, "sick", (1, 5))
    np.testing.assert_allclose(pairs.gold, [0.0, 1.0])


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl"])
def test_user_tables_with_custom_columns(tmp_path: Path, suffix: str) -> None:
    f = tmp_path / f"t.{suffix}"
    if suffix == "jsonl":
        f.write_text('{"q": "a b", "d": "c, d", "sim": 4}\n{"q": "e", "d": "f", "sim": 0}\n')
    else:
        sep = "," if suffix == "csv" else "\t"
        f.write_text(f'q{sep}d{sep}sim\n"a b"{sep}"c, d"{sep}4\ne{sep}f{sep}0\n')
    pairs = read_pairs(f, "table", (0, 5), {"sentence1": "q", "sentence2": "d", "score": "sim"})
    assert pairs.sentence2 == ["c, d", "f"] and not pairs.binary
    np.testing.assert_allclose(pairs.gold, [0.8, 0.0])


def test_label_column_gives_binary(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("sentence1,sentence2,label\na,b,1\nc,d,0\n")
    pairs = read_pairs(f, "table")
    assert pairs.binary and list(pairs.gold) == [1.0, 0.0]


@pytest.mark.parametrize(
    "content, message",
    [
        ("sentence1,sentence2,score\na,b,7\n", "row 2: score 7 is outside the range [0, 5]"),
        ("sentence1,sentence2,score\na,,3\n", "row 2: sentence2 is empty"),
        ("sentence1,sentence2,score\na,b,3\nNaN,b,3\n", "row 3: sentence1 is missing"),
        ("sentence1,sentence2,score\na,b,nan\n", "row 2: score is NaN"),
        ("sentence1,sentence2,score\na,b,x\n", "row 2: score 'x' is not a number"),
        ("sentence1,sentence2,label\na,b,2\n", "row 2: label '2' is not 0 or 1"),
        ("sentence1,sentence2,score\na,b\n", "row 2: has 2 fields, the header has 3"),
        ("sentence1,sentence_2,score\na,b,1\n", "missing column(s) ['sentence2']; columns found: ['sentence1', 'sentence_2', 'score']"),
    ],
)
def test_bad_rows_name_file_row_and_problem(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(InputError) as e:
        read_pairs(f, "table")
    assert str(e.value).startswith(str(f)) and message in str(e.value)


def test_not_utf8_names_the_row(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_bytes(b"sentence1,sentence2,score\na,b,1\nc\xff\xfe,d,2\n")
    with pytest.raises(InputError, match=r"row 3: column 'sentence1' contains bytes that are not UTF-8"):
        read_pairs(f, "table")


def test_stsb_score_out_of_range_names_line(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("g\tf\t2012\t1\t2.5\tA.\tB.\ng\tf\t2012\t2\t5.5\tC.\tD.\n")
    with pytest.raises(InputError, match="row 2: score 5.5 is outside"):
        read_pairs(f, "stsb")
