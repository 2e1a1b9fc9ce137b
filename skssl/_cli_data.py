"""What the command line reads: the images named by DATA and their labels.

DATA is a folder of image files (read on demand through
:class:`~skssl.io.ImageFolderLoader`, so that a big folder is read a chunk at a time),
a folder holding MNIST's idx files, or an ``.npy`` / ``.npz`` array. Labels come
from class subfolders (``folders``) or from a file: a CSV, an ``.npy``, an ``.npz``'s
``y`` or an idx labels file.
"""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .datasets import _find, load_mnist, read_idx
from .io import ImageFolderLoader, _DifferentSizesError

#: The files a DATA folder's listing keeps (by extension, in any case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
#: Labels that mark an image unlabeled, as a labels file writes them.
UNLABELED_TEXT = ("", "-1")


@dataclass(frozen=True)
class ImageData:
    """The images of DATA, by row: read a chunk at a time.

    Attributes
    ----------
    names : ndarray of shape (n_images,)
        What names each row in an output: a folder's file paths (relative to it,
        sorted), an array's row indices.
    index_name : {"path", "index"}
        The column header of ``names``.
    take : callable
        ``take(rows)``: the images of the rows ``rows`` (an int array).
    array : ndarray or None
        All of DATA when it is an array (an .npy's stays a memmap, on disk).
    """

    names: np.ndarray
    index_name: str
    take: Callable[[np.ndarray], np.ndarray]
    array: np.ndarray | None = None

    @property
    def from_folder(self) -> bool:
        """Whether the rows are image files (named by their paths)."""
        return self.index_name == "path"

    def __len__(self) -> int:
        return len(self.names)

    def all(self) -> np.ndarray:
        """Every image, in one array: DATA's own (a memmap, which ``fit`` reads a batch at a
        time), or a folder's images read."""
        return self.array if self.array is not None else self.take(np.arange(len(self)))

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The images in order, ``size`` at a time."""
        for start in range(0, len(self), size):
            yield self.take(np.arange(start, min(start + size, len(self))))

    def subset(self, rows: np.ndarray) -> "ImageData":
        """The images of the rows ``rows`` only."""
        return ImageData(self.names[rows], self.index_name, lambda inner: self.take(rows[inner]))


def read_data(source, *, size=None, mode="RGB", n_jobs=None) -> ImageData:
    """The images at ``source``: a folder of image files or of MNIST's idx files, an .npy or an .npz.

    Parameters
    ----------
    source : str or path
        DATA as the command line got it.
    size : int or tuple of (int, int), default=None
        ``(height, width)`` to resize a folder's images to; None keeps their size,
        which must then be the same for all.
    mode : {"RGB", "L"}, default="RGB"
        Colour or grayscale, for a folder's images.
    n_jobs : int, default=None
        Threads that decode a folder's images.

    Raises
    ------
    FileNotFoundError
        When ``source`` does not exist.
    ValueError
        When it is none of the kinds above, or holds no images.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"DATA {source} does not exist.")
    if path.is_dir():
        subset = _mnist_subset(path)
        if subset is not None:
            return _array_data(load_mnist(path, subset=subset)[0], source)
        return _folder_data(path, ImageFolderLoader(size=size, mode=mode, root=path, n_jobs=n_jobs))
    if path.suffix.lower() == ".npy":
        return _array_data(_load_npy(path, mmap_mode="r"), source)  # memory-mapped: read as needed
    if path.suffix.lower() == ".npz":
        return _array_data(_npz_array(path, preferred="X", what="images"), source)
    raise ValueError(
        f"DATA {source} is neither a folder (of images, or of MNIST's idx files) nor an .npy or .npz file."
    )


def _mnist_subset(folder):
    """``"train"`` or ``"test"`` when ``folder`` holds MNIST's idx images (torchvision's layout too), else None."""
    raw = folder / "MNIST" / "raw"
    directory = raw if raw.is_dir() else folder
    for subset, prefix in (("train", "train"), ("test", "t10k")):
        if _find(directory, f"{prefix}-images-idx3-ubyte") is not None:
            return subset
    return None


def _array_data(array, source):
    """The rows of ``array`` (an .npy's memmap, an .npz's array, MNIST's images), named by index."""
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(f"DATA {source} holds no images: an array of shape {array.shape}.")
    return ImageData(np.arange(len(array)), "index", lambda rows: np.asarray(array[rows]), array)


def _folder_data(folder, loader):
    """The image files under ``folder``, named by path, read by ``loader`` a chunk at a time."""
    paths = image_paths(folder)
    if not paths:
        raise ValueError(f"DATA {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    names = np.array(paths, dtype=object)

    def take(rows):
        try:
            return loader.transform(list(names[rows]))
        except _DifferentSizesError as exc:
            raise ValueError(
                f"{exc.details}; pass --size HEIGHT,WIDTH (or --size N for N x N) to resize them all to one size."
            ) from None

    return ImageData(names, "path", take)


def image_paths(folder) -> list[str]:
    """The image files under ``folder``, at any depth, as sorted POSIX paths relative to it.

    Hidden files and folders (whose names start with a dot) are left out.
    """
    folder = Path(folder)
    paths = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            if not any(part.startswith(".") for part in relative.parts):
                paths.append(relative.as_posix())
    return sorted(paths)


def _load_npy(path, **options):
    """The array in the .npy at ``path``, never unpickled."""
    try:
        return np.load(path, allow_pickle=False, **options)
    except ValueError as exc:
        raise ValueError(f"{path} is not an .npy file of numbers: {exc}") from None


def _npz_array(path, *, preferred, what):
    """The array ``preferred`` of the .npz at ``path``, or its only array."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = sorted(arrays.files)
            if preferred in names or len(names) == 1:
                return arrays[preferred if preferred in names else names[0]]
    except ValueError as exc:
        raise ValueError(f"{path} is not an .npz file of numbers: {exc}") from None
    raise ValueError(f"{path} holds the arrays {names}; the {what} must be the array {preferred!r} or the only one.")


def read_labels(labels, data: ImageData, source) -> np.ndarray:
    """One label per image of ``data``, the integer -1 where it has none.

    Parameters
    ----------
    labels : str
        ``"folders"``: the first folder of every path under DATA names its class
        (images directly in DATA are unlabeled). Otherwise a file: a CSV with a
        ``path`` and a ``label`` column (images it does not list are unlabeled), a
        CSV or text file of one label per row (a header ``label`` is skipped), an
        .npy, an .npz (its array ``y``, or its only array), or an idx labels file.
        ``-1`` or an empty cell marks an unlabeled image.
    data : ImageData
    source : str
        DATA, for the messages.

    Returns
    -------
    y : ndarray of shape (n_images,)
        int64 when every label is an integer; otherwise an object array of class
        names (strings) with the integer -1 for unlabeled images.
    """
    if labels == "folders":
        if not data.from_folder:
            raise ValueError(f"--labels folders needs DATA to be a folder of images; {source} is an array.")
        folders = [PurePosixPath(name).parts[:-1] for name in data.names]
        classes = [parts[0] if parts else -1 for parts in folders]
        return _as_labels(np.array(classes, dtype=object), names_are_text=True)
    path = Path(labels)
    if not path.is_file():
        raise FileNotFoundError(f"--labels: {labels} is neither the word 'folders' nor an existing file.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return _csv_labels(path, data)
    if suffix == ".npy":
        values = _load_npy(path)
    elif suffix == ".npz":
        values = _npz_array(path, preferred="y", what="labels")
    elif "idx1" in path.name:
        values = read_idx(path)
    else:
        raise ValueError(f"--labels {labels}: expected 'folders', a .csv or .txt, an .npy, an .npz or an idx file.")
    return _per_row(np.ravel(values), data, path)


def _csv_labels(path, data):
    """Labels from a CSV: by ``path`` and ``label`` columns, or one per row (an empty row: unlabeled)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: the BOM spreadsheets write
        rows = list(csv.reader(handle))
    header = [cell.strip() for cell in rows[0]] if rows else []
    if "path" in header:
        if "label" not in header:
            raise ValueError(f"{path} has a 'path' column but no 'label' column.")
        by_path = [(_cell(row, header.index("path")), _cell(row, header.index("label"))) for row in rows[1:] if row]
        return _labels_by_path(by_path, data, path)
    if "label" in header:
        column = header.index("label")
        rows = rows[1:]
    elif any(len(row) > 1 for row in rows):
        raise ValueError(f"{path} has several columns; name them, with a 'label' column (and 'path' for a folder).")
    else:
        column = 0
    return _per_row(np.array([_cell(row, column) for row in rows], dtype=object), data, path)


def _cell(row, column):
    """A CSV row's cell, empty where the row is short."""
    return row[column] if column < len(row) else ""


def _labels_by_path(pairs, data, path):
    """Labels of a folder's images from ``(path, label)`` pairs; images not listed are unlabeled."""
    if not data.from_folder:
        raise ValueError(f"{path} names images by path, but DATA is an array; give one label per row instead.")
    row_of = {name: row for row, name in enumerate(data.names)}
    labels = np.full(len(data), "", dtype=object)
    seen, unknown = set(), []
    for name, label in pairs:
        name = PurePosixPath(name.strip()).as_posix()
        if name not in row_of:
            unknown.append(name)
        elif name in seen:
            raise ValueError(f"{path} lists {name} twice.")
        else:
            seen.add(name)
            labels[row_of[name]] = label
    if unknown:
        raise ValueError(
            f"{path} lists {len(unknown)} path(s) that are not images under DATA, e.g. {unknown[0]!r}; "
            f"paths are relative to DATA."
        )
    return _as_labels(labels)


def _per_row(values, data, path):
    """``values`` as labels, one per row of ``data``."""
    if len(values) != len(data):
        raise ValueError(f"{path} holds {len(values)} labels but DATA has {len(data)} images; give one per image.")
    return _as_labels(values)


def _as_labels(values, *, names_are_text=False):
    """``values`` with the integer -1 where unlabeled: int64 if every label is an integer
    (unless ``names_are_text``: folder names stay names), else class names as strings."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        values = np.where(np.isnan(values), -1, values)
        if not np.all(values == np.round(values)):
            raise ValueError("The labels hold fractions; give class names or integers.")
        return values.astype(np.int64)
    texts = [value if isinstance(value, int) else str(value).strip() for value in values]
    labels = [-1 if text in UNLABELED_TEXT else text for text in texts]
    if not names_are_text:
        try:
            return np.array([int(label) for label in labels], dtype=np.int64)
        except ValueError:
            pass  # class names
    return np.array(labels, dtype=object)
