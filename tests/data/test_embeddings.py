"""Embeddings files: written a chunk at a time, read back equal (also by NumPy, memory-mapped), and
a damaged or foreign .npy refused in one line before any of it is used."""
import io
from pathlib import Path

import numpy as np
import pytest

from sts.data.embeddings import EmbeddingsFile, InMemory, Selected, write_npy
from sts.errors import InputError


def chunked(array: np.ndarray, size: int):
    return (array[a : a + size] for a in range(0, len(array), size))


def test_chunks_written_read_back_equal(tmp_path: Path) -> None:
    array = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    path = tmp_path / "e.npy"
    with open(path, "wb") as handle:
        assert write_npy(handle, chunked(array, 3), 10) == (10, 4)
    assert np.array_equal(np.load(path, mmap_mode="r", allow_pickle=False), array)
    stored = EmbeddingsFile(path, rows=10, width=4)
    assert np.array_equal(np.concatenate(list(stored.chunks(4))), array) and np.array_equal(stored.read(2, 5), array[2:5])
    keep = np.array([True, False, True, True, False, False, True, True, True, False])
    assert np.array_equal(np.concatenate(list(Selected(stored, keep).chunks(3))), array[keep]) and len(Selected(stored, keep)) == 6
    assert np.array_equal(np.concatenate(list(InMemory(array).chunks(6))), array)


def test_writer_refuses_a_count_other_than_announced() -> None:
    with pytest.raises(ValueError, match="announced 5 rows of embeddings, got 4"):
        write_npy(io.BytesIO(), chunked(np.zeros((4, 2), np.float32), 3), 5)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    np.save(path, array, **kwargs)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not numpy at all"), "is not a NumPy .npy file of embeddings"),
        (lambda p: p.write_bytes(save(p, np.zeros((4, 3), np.float32)).read_bytes()[:-5]), "truncated or padded"),
        (lambda p: p.write_bytes(save(p, np.zeros((4, 3), np.float32)).read_bytes() + b"x"), "truncated or padded"),
        (lambda p: save(p, np.zeros((4, 3))), "holds dtype float64, shape (4, 3); embeddings are a 2-D float32 array"),
        (lambda p: save(p, np.zeros(12, np.float32)), "holds dtype float32, shape (12,);"),
        (lambda p: save(p, np.asfortranarray(np.zeros((4, 3), np.float32))), "shape (4, 3) in Fortran order"),
        (lambda p: save(p, np.array([[{"x": 1}]] * 4, dtype=object), allow_pickle=True), "holds dtype object"),
        (lambda p: save(p, np.zeros((0, 3), np.float32)), "holds an empty array"),
        (lambda p: save(p, np.zeros((5, 3), np.float32)), "holds 5 embeddings but the input has 4 sentences"),
        (lambda p: save(p, np.zeros((4, 2), np.float32)), "holds 2-wide embeddings but the model's are 3-wide"),
    ],
)
def test_damaged_or_foreign_files_are_refused_in_one_line(make, message: str, tmp_path: Path) -> None:
    path = tmp_path / "e.npy"
    make(path)
    with pytest.raises(InputError) as refused:
        EmbeddingsFile(path, rows=4, width=3)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value) and "\n" not in str(refused.value)


def test_a_non_finite_value_is_refused_where_read(tmp_path: Path) -> None:
    array = np.ones((6, 3), np.float32)
    array[4, 1] = np.nan
    stored = EmbeddingsFile(save(tmp_path / "e.npy", array))
    assert np.array_equal(stored.read(0, 4), array[:4])
    with pytest.raises(InputError, match=r"e.npy: embedding 4 \(0-based row\) holds NaN or infinity"):
        list(stored.chunks(2))
    with pytest.raises(InputError, match="file not found"):
        EmbeddingsFile(tmp_path / "missing.npy")
