"""Batch scoring on a Ray cluster: `sts predict engine=ray`, and `ScorePairs`, the callable class
for Ray Data's `map_batches` in a user's own pipeline.

Ray's readers and writers move the rows and Ray Data schedules the work; each actor loads the
model once (`sts.load`) and labels its batches with `Model.label`, the API's DataFrame path, so a
row gets the same score and `lbl` in one process or on a cluster. Ray is imported lazily: without
the `ray` extra everything else works, and engine=ray says in one line what to install.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sts.api import OUTPUT_COLUMNS, load
from sts.data.readers import check_sentence, checked_pairs, sentence_columns
from sts.data.tables import SUFFIX_FORMATS, Table, check_apart, marker_content, require_columns
from sts.errors import InputError, STSError

SOURCE = "path"  # the column Ray's readers add (include_paths): the file each row came from
FORMATS = {**SUFFIX_FORMATS, ".parquet": "parquet", ".pq": "parquet"}
MARKER = ".sts-predict.json"  # written last into the output folder: what it holds, and that it is ours
NOT_INSTALLED = "engine=ray needs Ray Data: pip install 'sts[ray]'"


def import_ray() -> Any:
    """`ray` with Ray Data, or one line saying which extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise STSError(NOT_INSTALLED) from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """How Ray runs the job (predict.yaml's `ray` group)."""

    address: str | None = None  # None: $RAY_ADDRESS, else a Ray started on this machine for the run
    concurrency: int | None = None  # actors, each with its own model; None: Ray's autoscaling pool
    num_cpus: float = 1.0  # per actor
    num_gpus: float = 0.0  # per actor; > 0 scores on the actor's GPU
    batch_size: int = 1024  # rows per map_batches call
    output_format: str = "parquet"  # parquet | csv | jsonl


def _plain(value: Any) -> Any:
    """A pandas cell as predict.py's reader gives it: None for a missing value, Python scalars."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value.item() if hasattr(value, "item") and type(value).__module__ == "numpy" else value


class ScorePairs:
    """Ray Data callable class: `ds.map_batches(ScorePairs, fn_constructor_kwargs={...},
    batch_format="pandas", ...)`. Each actor loads the model once; each batch comes back with
    every column as it came in plus `score` (0-1) and `lbl` (score >= threshold). `settings` are
    `sts.load`'s (device, precision, batch_size, backend, quantize, calibration). A bad sentence
    raises predict.py's error for the file in the `path` column (Ray's include_paths=True)."""

    def __init__(self, ckpt: str | None = None, columns: Sequence[str] = ("line1", "line2"), threshold: float | None = None,
                 both_orders: bool | None = None, **settings: Any) -> None:
        self.model = load(ckpt, both_orders=both_orders, **settings)
        self.columns = tuple(columns)
        self.threshold = threshold

    def __call__(self, batch: Any) -> Any:
        sources = batch[SOURCE].tolist() if SOURCE in batch.columns else ["a Ray Data batch"] * len(batch)
        require_columns(sources[0] if sources else "a Ray Data batch", list(batch.columns), self.columns)
        for column in self.columns:
            for source, value in zip(sources, batch[column].tolist()):
                check_sentence(source, None, _plain(value), column)
        return self.model.label(batch, threshold=self.threshold, columns=self.columns)


# --- input ----------------------------------------------------------------------------------
def _is_uri(path: str) -> bool:
    return "://" in path


def _listed_files(spec: str) -> list[str]:
    """The files `spec` names: a file, a folder's files (recursively, hidden ones skipped) or a
    glob; a local path or a URI of a file system Ray reads (s3://, gs://, ...)."""
    pattern = any(c in spec for c in "*?[")
    if not _is_uri(spec):
        if pattern:
            import glob

            return sorted(p for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        path = Path(spec)
        if path.is_dir():
            return sorted(str(p) for p in path.rglob("*") if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
        return [spec] if path.exists() else []
    import pyarrow.fs

    fs, where = pyarrow.fs.FileSystem.from_uri(spec.split("*")[0].split("?")[0].split("[")[0] if pattern else spec)
    scheme = spec.split("://")[0] + "://"
    info = fs.get_file_info(where)
    if info.type == pyarrow.fs.FileType.File and not pattern:
        return [spec]
    if info.type != pyarrow.fs.FileType.Directory:
        return []
    found = fs.get_file_info(pyarrow.fs.FileSelector(where, recursive=True))
    names = [f"{scheme}{f.path}" for f in found if f.type == pyarrow.fs.FileType.File and not any(p.startswith((".", "_")) for p in f.path[len(where):].split("/"))]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, spec)) if pattern else sorted(names)


def input_files(spec: str, fmt: str | None) -> tuple[list[str], str]:
    """The sorted files `input=` names and their one format (`fmt`, or their suffixes)."""
    files = _listed_files(spec)
    if not fmt:
        files = [f for f in files if Path(f).suffix.lower() in FORMATS] if len(files) > 1 else files
        kinds = sorted({FORMATS.get(Path(f).suffix.lower(), "?") for f in files})
        if "?" in kinds:
            raise InputError(spec, f"cannot tell the format from suffix {Path(files[0]).suffix!r}: use {', '.join(FORMATS)} or set format=")
        if len(kinds) > 1:
            raise InputError(spec, f"holds files of several formats ({', '.join(kinds)}); one run reads one format: narrow input= or set format=")
        fmt = kinds[0] if kinds else None
    if not files:
        raise InputError(spec, "file not found" if not any(c in spec for c in "*?[") else "no files match")
    return files, str(fmt)


def read(ray: Any, files: list[str], fmt: str, text_columns: Sequence[str] = (), include_paths: bool = True) -> Any:
    """A Ray Dataset of the files through Ray's own readers, every row tagged with its file.
    CSV/TSV: `text_columns` are read as text, so a value comes back as it was written (`007`)."""
    common = {"include_paths": include_paths, "partitioning": None, "file_extensions": None}
    if fmt == "parquet":
        return ray.data.read_parquet(files, **common)
    if fmt == "jsonl":
        return ray.data.read_json(files, lines=True, **common)
    import pyarrow as pa
    from pyarrow import csv

    return ray.data.read_csv(
        files,
        parse_options=csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True),
        convert_options=csv.ConvertOptions(column_types={c: pa.string() for c in text_columns}),
        **common,
    )


def first_bad_row(path: str, fmt: str, columns: Sequence[str]) -> InputError | None:
    """The first problem of one file as predict.py names it (file, row, problem), found by reading
    it again with predict.py's reader (CSV/TSV/JSONL) or row by row (Parquet: row N is the Nth
    record); None when none is found or the file is not local. Only ever run after a failure."""
    try:
        if fmt != "parquet":
            if _is_uri(path):
                return None
            table = Table(path, fmt)
            table.require(*columns)
            for _ in checked_pairs(table, columns[0], columns[1]):
                pass
            return None
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        require_columns(path, parquet.schema_arrow.names, columns)
        row = 0
        for batch in parquet.iter_batches(columns=list(columns)):
            values = batch.to_pydict()
            for k in range(batch.num_rows):
                row += 1
                for column in columns:
                    check_sentence(path, row, values[column][k], column)
    except InputError as e:
        return e
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """An error and what it wraps (Ray's task errors keep the worker's exception as `cause`)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__


def explain(error: BaseException, files: list[str], fmt: str, columns: Sequence[str]) -> STSError:
    """A failed Ray job as one line: predict.py's error for the file that failed (named by our
    worker's InputError, or by Ray's reader), else the first line of Ray's own message."""
    for cause in _causes(error):
        if isinstance(cause, InputError):
            return first_bad_row(str(cause.path), fmt, columns) or cause
    text = "\n".join(str(c) for c in _causes(error))
    named = [f for f in files if f in text]
    for path in sorted(named, key=len, reverse=True)[:1] or (files if fmt != "parquet" else []):
        found = first_bad_row(path, fmt, columns)
        if found is not None:
            return found
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return STSError(f"the Ray job failed: {(lines[-1] if lines else type(error).__name__)[:500]}")


# --- output ---------------------------------------------------------------------------------
class Output:
    """An output folder written whole or not at all: Ray writes into a hidden sibling, moved onto
    the name at the end (a rename on a file system; on object stores, which cannot rename, a copy
    of the finished files, the marker last). `overwrite` replaces only a folder this wrote."""

    def __init__(self, name: str, overwrite: bool, inputs: list[str]) -> None:
        import pyarrow.fs

        self.name = name
        self.uri = _is_uri(name)
        if self.uri:
            self.fs, self.path = pyarrow.fs.FileSystem.from_uri(name)
        else:
            self.fs, self.path = pyarrow.fs.LocalFileSystem(), str(Path(name).absolute())
            check_apart({"output": name}, {"input": [f for f in inputs if not _is_uri(f) and not any(c in f for c in "*?[")]})
            if not Path(self.path).parent.is_dir():
                raise STSError(f"{Path(name).parent}: output directory does not exist")
        self.path = self.path.rstrip("/")
        parent, _, base = self.path.rpartition("/")
        self.tmp = f"{parent}/.{base}.{uuid.uuid4().hex[:12]}.tmp"
        self.exists = self._check(overwrite)

    def _check(self, overwrite: bool) -> bool:
        import pyarrow.fs

        info = self.fs.get_file_info(self.path)
        if info.type == pyarrow.fs.FileType.NotFound:
            return False
        if info.type != pyarrow.fs.FileType.Directory:
            raise STSError(f"{self.name}: exists and is not a folder; engine=ray writes a folder of files, choose another output=")
        if not self.fs.get_file_info(pyarrow.fs.FileSelector(self.path)):
            return True
        if not overwrite:
            raise STSError(f"{self.name}: already exists; pass overwrite=true to replace it")
        if not isinstance(self.marker(self.path).get("rows"), int):
            raise STSError(f"{self.name}: overwrite=true only replaces a folder predict engine=ray wrote (with its {MARKER}); this one is not, so it is left alone")
        return True

    def marker(self, folder: str) -> dict[str, Any]:
        if not self.uri:
            return marker_content(Path(folder) / MARKER) or {}
        try:
            with self.fs.open_input_stream(f"{folder}/{MARKER}") as f:
                content = json.loads(f.read(1 << 20))
        except (OSError, ValueError):
            return {}
        return content if isinstance(content, dict) else {}

    @property
    def target(self) -> str:
        """Where Ray writes: the hidden sibling, as a path or URI Ray's writers take."""
        return self.name.split("://")[0] + ":/" + ("" if self.tmp.startswith("/") else "/") + self.tmp if self.uri else self.tmp

    def place(self, record: dict[str, Any]) -> None:
        """Write the marker, then move the finished folder onto the output name."""
        with self.fs.open_output_stream(f"{self.tmp}/{MARKER}") as f:
            f.write(json.dumps(record, indent=1).encode())
        if self.exists:
            self.fs.delete_dir(self.path)
        try:
            self.fs.move(self.tmp, self.path)
        except (OSError, NotImplementedError):  # object stores: no directory rename
            import pyarrow.fs

            pyarrow.fs.copy_files(self.tmp, self.path, source_filesystem=self.fs, destination_filesystem=self.fs)
            self.fs.delete_dir(self.tmp)

    def discard(self, settle: float = 0.0) -> None:
        """Remove the hidden sibling. `settle` seconds: after a failed job, write tasks that were
        already running may still finish a file (and recreate the folder) after the failure is
        raised; the sibling must stay absent that long (checked every 0.25 s) before we return."""
        import pyarrow.fs

        absent_since = None
        deadline = time.monotonic() + max(settle, 0.0) + 10.0
        while True:
            try:
                if self.fs.get_file_info(self.tmp).type != pyarrow.fs.FileType.NotFound:
                    self.fs.delete_dir(self.tmp)
                    absent_since = None
                elif absent_since is None:
                    absent_since = time.monotonic()
            except OSError:
                pass  # a file vanished under us, or a place that vanished: look again
            if absent_since is not None and time.monotonic() - absent_since >= settle or time.monotonic() > deadline:
                return
            time.sleep(0.25)


def _rows_written(output: Output, fmt: str) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(output.tmp, filesystem=output.fs, format={"jsonl": "json"}.get(fmt, fmt)).count_rows()


def _write(dataset: Any, target: str, fmt: str) -> None:
    """Ray's writer for `fmt` (sts.config.options.OUTPUT_FORMATS): one file per write task."""
    {"parquet": dataset.write_parquet, "csv": dataset.write_csv, "jsonl": dataset.write_json}[fmt](target)


# --- the job --------------------------------------------------------------------------------
def _connect(ray: Any, address: str | None) -> bool:
    """Join the session already open, the cluster at `address` or $RAY_ADDRESS, or start Ray on
    this machine; True when this run started (so must stop) it."""
    if ray.is_initialized():
        return False
    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    return True


def score_files(input: str, output: str, *, fmt: str | None, columns: Sequence[str] | None, threshold: float, ckpt: str | None,
                both_orders: bool | None, settings: dict[str, Any], overwrite: bool, ray_settings: RaySettings, progress: bool) -> tuple[int, list[str]]:
    """Label every row of `input` (a file, folder or glob) into the folder `output` on Ray Data;
    returns (rows written, the input files). Every input column is kept, `path` names each row's
    file, and rows keep their order (files sorted by name, then as each file holds them)."""
    ray = import_ray()
    files, fmt = input_files(input, fmt)
    target = Output(output, overwrite, [input, *files])
    started = _connect(ray, ray_settings.address)
    context = ray.data.DataContext.get_current()
    before = (context.execution_options.preserve_order, context.enable_progress_bars, logging.getLogger("ray.data").level)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = progress
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a failure is our one line, not Ray's traceback
    first, second = columns or ("", "")
    failed = False
    try:
        sample = read(ray, files[:1], fmt, include_paths=False).limit(200).take_all()
        if not sample:
            raise InputError(files[0], "no data rows (header only)")
        found = list(sample[0])
        first, second = sentence_columns(files[0], found, sample, columns)
        clash = [c for c in (*OUTPUT_COLUMNS, SOURCE) if c in found]
        if clash:
            raise InputError(files[0], f"already has column(s) {clash}, which the output adds")
        scored = read(ray, files, fmt, found).map_batches(
            ScorePairs,
            fn_constructor_kwargs={"ckpt": ckpt, "columns": (first, second), "threshold": threshold, "both_orders": both_orders, **settings},
            batch_size=ray_settings.batch_size,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=ray_settings.concurrency) if ray_settings.concurrency else None,
            num_cpus=ray_settings.num_cpus,
            num_gpus=ray_settings.num_gpus or None,
        )
        _write(scored, target.target, ray_settings.output_format)
        rows = _rows_written(target, ray_settings.output_format)
        target.place({"input": input, "files": len(files), "format": fmt, "columns": [first, second], "ckpt": ckpt, "threshold": threshold,
                      "rows": rows, "output_format": ray_settings.output_format})
        return rows, files
    except STSError:
        failed = True
        raise
    except Exception as e:  # a Ray job's failure: the worker's error, or the reader's
        failed = True
        raise explain(e, files, fmt, (first, second)) from None
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = before[:2]
        logging.getLogger("ray.data").setLevel(before[2])
        if started:
            ray.shutdown()  # no task of ours is left to write into the sibling
        target.discard(settle=2.0 if failed and not started else 0.0)

