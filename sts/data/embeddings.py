"""Embeddings files: N x dim float32 `.npy`, written chunk by chunk and read back chunk by chunk.

A corpus's embeddings may not fit in memory (1M sentences x 384 floats is 1.5 GB), so embed.py
writes each chunk as it is computed and mine.py builds its index from the file a chunk at a time.
The file is plain NumPy (`np.load(path, mmap_mode="r")` maps it); reading here goes through
positioned reads rather than a mapping, so pages read once do not stay in the process's RSS.
A file from disk is hostile: its header is parsed without unpickling, and its dtype, order, shape
and exact size, and every value's finiteness, are checked, each failure one line naming the file.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from sts.errors import InputError

DTYPE = np.dtype("<f4")
MAX_HEADER = 10_000  # bytes of .npy header; NumPy's own default limit


def write_npy(handle: IO[bytes], chunks: Iterable[np.ndarray], rows: int) -> tuple[int, int]:
    """Write `rows` embeddings arriving as `chunks` (each k x dim) to `handle` as one .npy, the
    header first (its shape is known from `rows` and the first chunk's width); returns the shape.
    Fewer or more rows than announced, or a chunk of another width, is an error (nothing valid
    would be left, so the caller's atomic output discards the file)."""
    written, width = 0, None
    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype=DTYPE)
        if chunk.ndim != 2 or (width is not None and chunk.shape[1] != width):
            raise ValueError(f"embeddings chunk of shape {chunk.shape} after width {width}")
        if width is None:
            width = chunk.shape[1]
            np.lib.format.write_array_header_1_0(handle, {"descr": DTYPE.str, "fortran_order": False, "shape": (rows, width)})
        handle.write(chunk.tobytes())
        written += len(chunk)
    if width is None or written != rows:
        raise ValueError(f"announced {rows} rows of embeddings, got {written}")
    return rows, width


class Embeddings(Protocol):
    """N x `width` embeddings read a chunk of consecutive rows at a time (in memory or on disk)."""

    width: int

    def __len__(self) -> int: ...

    def chunks(self, size: int) -> Iterator[np.ndarray]: ...


class InMemory:
    """An N x dim array (numpy, torch or a memory map) as `Embeddings`."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.width = int(array.shape[1])

    def __len__(self) -> int:
        return len(self.array)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(self.array), size):
            yield np.asarray(self.array[start : start + size], dtype=np.float32)


class Selected:
    """The rows of `source` where `keep` is true, in order (mining keeps a repeated sentence's
    first row only)."""

    def __init__(self, source: Embeddings, keep: np.ndarray) -> None:
        self.source, self.keep = source, keep
        self.width = source.width
        self.rows = int(keep.sum())

    def __len__(self) -> int:
        return self.rows

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        start = 0
        for chunk in self.source.chunks(size):
            kept = chunk[self.keep[start : start + len(chunk)]]
            start += len(chunk)
            if len(kept):
                yield kept


class EmbeddingsFile:
    """A checked `.npy` of N x dim float32 embeddings, read a range of rows at a time."""

    def __init__(self, path: str | Path, rows: int | None = None, width: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "file not found" if not self.path.exists() else "is not a regular file")
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0), (3, 0)):
                    raise ValueError(f"unsupported .npy version {version}")
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(f, max_header_size=MAX_HEADER)
                self._offset = f.tell()
        except (ValueError, OSError, SyntaxError, TypeError) as e:
            raise InputError(self.path, f"is not a NumPy .npy file of embeddings ({str(e).splitlines()[0][:120]})") from None
        if dtype != DTYPE or fortran or len(shape) != 2:
            what = f"dtype {dtype}, shape {shape}{' in Fortran order' if fortran else ''}"
            raise InputError(self.path, f"holds {what}; embeddings are a 2-D float32 array in C order, as embed.py writes them")
        self.rows, self.width = int(shape[0]), int(shape[1])
        if self.rows < 1 or self.width < 1:
            raise InputError(self.path, f"holds an empty array of shape {shape}")
        expected = self._offset + self.rows * self.width * DTYPE.itemsize
        size = self.path.stat().st_size
        if size != expected:
            raise InputError(self.path, f"is {size} bytes but its header ({self.rows} x {self.width} float32) needs {expected}: truncated or padded")
        if rows is not None and self.rows != rows:
            raise InputError(self.path, f"holds {self.rows} embeddings but the input has {rows} sentences; embed the same input (embed.py input=...)")
        if width is not None and self.width != width:
            raise InputError(self.path, f"holds {self.width}-wide embeddings but the model's are {width}-wide; embed with the same model (embed.py ckpt=...)")

    def __len__(self) -> int:
        return self.rows

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1, as a fresh array (finite values only)."""
        count = (stop - start) * self.width
        with open(self.path, "rb") as f:
            data = os.pread(f.fileno(), count * DTYPE.itemsize, self._offset + start * self.width * DTYPE.itemsize)
        if len(data) != count * DTYPE.itemsize:
            raise InputError(self.path, "changed while being read (shorter than its header says)")
        block = np.frombuffer(data, DTYPE).reshape(stop - start, self.width).copy()
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise InputError(self.path, f"embedding {bad} (0-based row) holds NaN or infinity")
        return block

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.rows, size):
            yield self.read(start, min(start + size, self.rows))
