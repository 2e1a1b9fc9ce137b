"""What the command line writes: features and predictions, a chunk at a time, atomically.

Every file is written under a hidden name and renamed into place when complete
(:func:`skssl._files.atomic_destination`): after an error or Ctrl-C no half file is
left under the name asked for, and a file already there is unchanged.
"""

import csv
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ._cli_data import ImageData
from ._files import atomic_destination, writable_folder

FEATURE_SUFFIXES = (".npy", ".csv", ".parquet")
PREDICTION_SUFFIXES = (".csv", ".npy")
_FIX = "Choose a file path in a folder you can write to."


def checked_output(path, what, suffixes=None) -> Path:
    """``path``, checked before any work: its suffix, and that its folder can take it.

    The folder is created if need be; a ``.parquet`` path needs pyarrow.

    Raises
    ------
    ValueError
        For a suffix not in ``suffixes`` or a missing pyarrow.
    OSError
        When ``path`` is a folder or its folder cannot hold files.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffixes is not None and suffix not in suffixes:
        raise ValueError(f"{what} {path} must end in {', '.join(suffixes[:-1])} or {suffixes[-1]}.")
    if suffix == ".parquet":
        _pyarrow()
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give the path of a file.")
    writable_folder(path.parent.absolute(), what=f"The folder of {what}", fix=_FIX)
    return path


def paths_file(path) -> Path:
    """Where an .npy's image paths go: ``features.npy`` -> ``features.paths.txt``."""
    return Path(path).with_suffix(".paths.txt")


def write_features(path, data: ImageData, features, columns) -> Path | None:
    """Write the feature chunks ``features`` (of ``data``'s rows, in order) to ``path``.

    ``.npy`` is filled through a memory map (with the image paths of a folder in
    :func:`paths_file`), ``.csv`` and ``.parquet`` (through pyarrow) are appended to,
    with the rows' names (paths or indices) as their first column, the row index.
    Only one chunk is in memory at a time. Returns the image paths' file, if written.
    """
    path = Path(path)
    writer_class = {".npy": _NpyFeatures, ".csv": _CsvFeatures, ".parquet": _ParquetFeatures}[path.suffix.lower()]
    with ExitStack() as stack:
        partial = stack.enter_context(atomic_destination(path, what="the features", fix=_FIX))
        paths = _write_paths_file(stack, path, data) if writer_class is _NpyFeatures else None
        writer = writer_class(partial, len(data), data.index_name, columns)
        stack.callback(writer.close)  # before the files are renamed into place
        written = 0
        for chunk in features:
            writer.write(data.names[written : written + len(chunk)], chunk)
            written += len(chunk)
    return paths


def write_predictions(path, data: ImageData, predictions) -> Path | None:
    """Write ``predictions`` to ``path``: a CSV with the rows' names, or an .npy (with
    the image paths of a folder in :func:`paths_file`, which it returns)."""
    path = Path(path)
    with ExitStack() as stack:
        partial = stack.enter_context(atomic_destination(path, what="the predictions", fix=_FIX))
        if path.suffix.lower() == ".npy":
            paths = _write_paths_file(stack, path, data)
            with open(partial, "wb") as handle:  # np.save would add ".npy" to a name
                # class names as a string array: an object array would need pickle to load
                np.save(handle, predictions.astype(str) if predictions.dtype.kind == "O" else predictions)
            return paths
        with open(partial, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([data.index_name, "prediction"])
            writer.writerows(zip(data.names.tolist(), predictions.tolist()))
        return None


def _write_paths_file(stack, path, data):
    """The image paths of a folder's rows, one a line, in :func:`paths_file` (renamed into
    place when ``stack`` closes): that file, or None for an array's rows."""
    if not data.from_folder:
        return None
    partial = stack.enter_context(atomic_destination(paths_file(path), what="the image paths", fix=_FIX))
    partial.write_text("".join(f"{name}\n" for name in data.names), encoding="utf-8")
    return paths_file(path)


class _NpyFeatures:
    """An .npy mapped in memory, created at the first chunk (which gives the width and dtype)."""

    def __init__(self, partial, n_rows, index_name, columns):
        self.partial, self.n_rows = partial, n_rows
        self.array, self.row = None, 0

    def write(self, names, features):
        if self.array is None:
            shape = (self.n_rows, features.shape[1])
            self.array = np.lib.format.open_memmap(self.partial, mode="w+", dtype=features.dtype, shape=shape)
        self.array[self.row : self.row + len(features)] = features
        self.row += len(features)

    def close(self):
        if self.array is not None:
            self.array.flush()
            self.array = None  # unmaps the file


class _CsvFeatures:
    """A CSV with a header; float32 values written in the fewest digits that read back the same."""

    def __init__(self, partial, n_rows, index_name, columns):
        self.handle = open(partial, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)
        self.writer.writerow([index_name, *columns])

    def write(self, names, features):
        self.writer.writerows([name, *values] for name, values in zip(names.tolist(), features.astype(str).tolist()))

    def close(self):
        self.handle.close()


class _ParquetFeatures:
    """A Parquet file written a row group per chunk; the rows' names are the pandas index."""

    def __init__(self, partial, n_rows, index_name, columns):
        self.partial, self.index_name, self.columns = partial, index_name, list(columns)
        self.writer = None

    def write(self, names, features):
        pa, pq = _pyarrow()
        try:
            import pandas as pd
        except ImportError:  # without pandas, the names are a plain first column
            table = pa.table({self.index_name: names.tolist(), **dict(zip(self.columns, features.T))})
        else:
            index = pd.Index(names.tolist(), name=self.index_name)
            table = pa.Table.from_pandas(pd.DataFrame(features, columns=self.columns, index=index), preserve_index=True)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.partial, table.schema)
        self.writer.write_table(table)

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            "Writing .parquet needs pyarrow: pip install pyarrow (or skssl[parquet]); or write .npy or .csv."
        ) from None
    return pa, pq


def aligned(header, rows, right=()):
    """The lines of a table: every column as wide as its widest cell, those numbered in ``right`` right-aligned."""
    table = [header, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    return [
        "  ".join(
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in table
    ]
