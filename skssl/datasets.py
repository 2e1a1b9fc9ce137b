"""Image data sets: digits as images, MNIST from local files, synthetic shapes.

Nothing here downloads: :func:`load_digits_images` uses the copy of the digits that
ships with scikit-learn, :func:`load_mnist` reads files you already have, and
:func:`make_shapes` draws a labelled toy set for tests and examples.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state

SHAPES = ("square", "cross", "circle", "triangle")

_MNIST_HELP = (
    "Expected either an .npz file with arrays 'X' (n, 28, 28) uint8 and 'y', or the "
    "standard idx files {images} and {labels} (optionally gzipped, '.gz'), given as a "
    "directory holding them or as the path of the images file. skssl never downloads "
    "data: get the files from http://yann.lecun.com/exdb/mnist/ (or a mirror such as "
    "https://ossci-datasets.s3.amazonaws.com/mnist/), or let torchvision fetch them with "
    "torchvision.datasets.MNIST(root, download=True), which leaves them in "
    "root/MNIST/raw."
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_digits_images(*, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's embedded 8x8 digits as images.

    Parameters
    ----------
    n_samples : int, default=None
        Keep the first ``n_samples`` images; ``None`` keeps all 1,797.

    Returns
    -------
    X : ndarray of shape (n_samples, 8, 8), dtype float32
        Gray levels from 0 to 16.
    y : ndarray of shape (n_samples,), dtype int64
        The digit, 0 to 9.

    Examples
    --------
    >>> from skssl.datasets import load_digits_images
    >>> X, y = load_digits_images()
    >>> X.shape, X.dtype, float(X.max()), y[:5]
    ((1797, 8, 8), dtype('float32'), 16.0, array([0, 1, 2, 3, 4]))
    """
    digits = load_digits()
    X = digits.images.astype(np.float32)
    y = digits.target.astype(np.int64)
    return X[:n_samples], y[:n_samples]


def load_mnist(path: str | os.PathLike[str], *, subset: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST from an ``.npz`` file or the original idx files; never downloads.

    Parameters
    ----------
    path : str or path-like
        An ``.npz`` file with arrays ``X`` and ``y``; a directory holding
        ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (or ``t10k-*``),
        each optionally gzipped (torchvision's ``root``, with them in ``MNIST/raw``,
        works too); or the path of an images idx file, whose labels file is its
        sibling with ``images-idx3`` replaced by ``labels-idx1``.
    subset : {"train", "test"}, default="train"
        Which idx pair a directory is searched for: ``train-*`` (60,000 images) or
        ``t10k-*`` (10,000). Ignored for a file path.

    Returns
    -------
    X : ndarray of shape (n_samples, 28, 28), dtype uint8
    y : ndarray of shape (n_samples,), dtype int64

    Raises
    ------
    FileNotFoundError
        When the files are not there; the message says which files are expected
        and where to get them.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skssl.datasets import load_mnist
    >>> path = os.path.join(tempfile.mkdtemp(), "mnist.npz")
    >>> np.savez(path, X=np.zeros((3, 28, 28), np.uint8), y=np.arange(3))
    >>> X, y = load_mnist(path)
    >>> X.shape, X.dtype, y.dtype
    ((3, 28, 28), dtype('uint8'), dtype('int64'))
    """
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}.")
    prefix = "train" if subset == "train" else "t10k"
    images_name, labels_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as data:
            if "X" not in data or "y" not in data:
                raise ValueError(f"{path} holds arrays {sorted(data.files)}; expected 'X' and 'y'.")
            X, y = data["X"], data["y"]
        if X.dtype != np.uint8:
            raise ValueError(f"{path}: 'X' should hold uint8 gray levels, got {X.dtype}.")
        X = X.reshape(len(X), 28, 28) if X.ndim == 2 and X.shape[1] == 784 else X
        return _checked(X, y, path)
    if path.is_dir():
        torchvision_layout = path / "MNIST" / "raw"
        directory = torchvision_layout if torchvision_layout.is_dir() else path
        images_path, labels_path = _find(directory, images_name), _find(directory, labels_name)
    elif path.is_file():
        if not re.search(r"images[-.]idx3", path.name):
            raise ValueError(
                f"{path} is neither an .npz file nor an images idx file (*-images-idx3-ubyte"
                f"[.gz]). " + _MNIST_HELP.format(images=images_name, labels=labels_name)
            )
        images_path, images_name = path, path.name
        labels_name = re.sub(r"images([-.])idx3", r"labels\1idx1", path.name).removesuffix(".gz")
        labels_path = _find(path.parent, labels_name)
    else:
        images_path = labels_path = None
    if images_path is None or labels_path is None:
        raise FileNotFoundError(
            f"MNIST not found at {path}. " + _MNIST_HELP.format(images=images_name, labels=labels_name)
        )
    return _checked(read_idx(images_path), read_idx(labels_path), images_path)


def _find(directory, name):
    """``name`` or ``name.gz`` in ``directory`` (also with ``.idx`` for ``-idx``), or None."""
    for candidate in (name, name.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            if (directory / (candidate + suffix)).is_file():
                return directory / (candidate + suffix)
    return None


def _checked(X, y, source):
    y = np.asarray(y).astype(np.int64)
    if X.ndim != 3 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"{source}: expected images (n, H, W) and n labels, got shapes {X.shape} and {y.shape}.")
    return X, y


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one idx file (the MNIST format), gzipped or not, into an array.

    The header is two zero bytes, a type code (``0x08`` for uint8), the number of
    dimensions and one big-endian int32 per dimension; the values follow.

    Examples
    --------
    >>> import gzip, os, tempfile
    >>> from skssl.datasets import read_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> with gzip.open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad header {raw[:4]!r}).")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    values = np.frombuffer(raw, dtype, count=int(np.prod(shape)), offset=4 + 4 * ndim)
    return values.reshape(shape).astype(dtype.newbyteorder("="))  # native, writeable copy


def make_shapes(
    n_samples: int = 200,
    *,
    image_size: int = 16,
    noise: float = 0.0,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A labelled toy set of white shapes on black: squares, crosses, circles, triangles.

    Each image holds one filled shape of random size and position; the classes are
    balanced and in random order. Drawn with broadcast NumPy masks, so thousands of
    images take milliseconds.

    Parameters
    ----------
    n_samples : int, default=200
        Number of images.
    image_size : int, default=16
        Height and width in pixels (at least 8).
    noise : float, default=0.0
        Standard deviation of Gaussian pixel noise; the result is clipped to [0, 1].
    random_state : int, RandomState instance or None, default=None
        Seeds classes, sizes, positions and noise.

    Returns
    -------
    X : ndarray of shape (n_samples, image_size, image_size), dtype float32
        Values in [0, 1].
    y : ndarray of shape (n_samples,), dtype int64
        Index into :data:`SHAPES`: 0 square, 1 cross, 2 circle, 3 triangle.

    Examples
    --------
    >>> from skssl.datasets import make_shapes
    >>> X, y = make_shapes(100, image_size=16, random_state=0)
    >>> X.shape, X.dtype, sorted(set(y.tolist()))
    ((100, 16, 16), dtype('float32'), [0, 1, 2, 3])
    """
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}.")
    rng = check_random_state(random_state)
    y = rng.permutation(np.arange(n_samples) % len(SHAPES)).astype(np.int64)
    radius = rng.uniform(0.2, 0.4, n_samples) * image_size  # half the shape's width, in pixels
    centre = rng.uniform(radius[:, None], image_size - 1 - radius[:, None], (n_samples, 2))
    grid = np.arange(image_size, dtype=np.float64)
    dy = grid[None, :, None] - centre[:, 0, None, None]  # (n, H, 1)
    dx = grid[None, None, :] - centre[:, 1, None, None]  # (n, 1, W)
    r = radius[:, None, None]
    bar = np.maximum(r / 3, 1.0)  # half the cross's stroke width
    ax, ay = np.abs(dx), np.abs(dy)
    masks = np.stack(
        [
            (ax <= r * 0.8) & (ay <= r * 0.8),  # square
            ((ax <= bar / 2) & (ay <= r)) | ((ay <= bar / 2) & (ax <= r)),  # cross
            dx**2 + dy**2 <= r**2,  # circle
            (ay <= r) & (ax <= (dy + r) / 2),  # triangle, apex up
        ]
    )  # (4, n, H, W)
    X = masks[y, np.arange(n_samples)].astype(np.float32)  # (n, H, W)
    if noise > 0:
        X = np.clip(X + rng.normal(0.0, noise, X.shape).astype(np.float32), 0.0, 1.0)
    return X, y


def load_sample_patches(
    patch_size: int = 16, n_patches: int = 2000, *, random_state: int | np.random.RandomState | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Colour patches of scikit-learn's two sample photographs, labelled by where they come from.

    The images of :func:`sklearn.datasets.load_sample_images` (``china.jpg``, a temple
    among trees under a sky, and ``flower.jpg``, a pink flower on green leaves; no
    download) are halved to 213 x 320 pixels. Every patch is labelled with its image and
    the quadrant its centre lies in: 8 balanced classes in random order. Texture and
    colour both tell the classes apart, yet patches near a quadrant's edge look like
    their neighbours: with 300 labelled patches a logistic regression on the raw pixels
    scores about 0.41 on 1,000 others (chance: 0.125); on their gray levels, about 0.33.

    Parameters
    ----------
    patch_size : int, default=16
        Height and width of the square patches, from 4 to 106 (half the image height).
    n_patches : int, default=2000
        Number of patches; classes get equal counts up to one.
    random_state : int, RandomState instance or None, default=None
        Seeds the classes' order and the positions of the patches.

    Returns
    -------
    X : ndarray of shape (n_patches, patch_size, patch_size, 3), dtype uint8
        RGB patches.
    y : ndarray of shape (n_patches,), dtype int64
        ``4 * image + quadrant``: image 0 is ``china.jpg``, 1 ``flower.jpg``; quadrants
        are 0 top left, 1 top right, 2 bottom left, 3 bottom right.

    Examples
    --------
    >>> import numpy as np
    >>> from skssl.datasets import load_sample_patches
    >>> X, y = load_sample_patches(16, 400, random_state=0)
    >>> X.shape, X.dtype, np.bincount(y).tolist()
    ((400, 16, 16, 3), dtype('uint8'), [50, 50, 50, 50, 50, 50, 50, 50])
    """
    from sklearn.datasets import load_sample_images

    if not 4 <= patch_size <= 106:
        raise ValueError(f"patch_size must be between 4 and 106 pixels, got {patch_size}.")
    if n_patches < 1:
        raise ValueError(f"n_patches must be at least 1, got {n_patches}.")
    rng = check_random_state(random_state)
    images = []
    for image in load_sample_images().images:  # (427, 640, 3) each
        height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        halved = image[:height, :width].reshape(height // 2, 2, width // 2, 2, 3).mean(axis=(1, 3))
        images.append(np.round(halved).astype(np.uint8))  # (213, 320, 3)
    images = np.stack(images)  # (2, H, W, 3)
    _, height, width, _ = images.shape
    y = rng.permutation(np.arange(n_patches) % 8).astype(np.int64)
    image, quadrant = y // 4, y % 4
    # the patch centre falls uniformly in its quadrant; the patch is kept inside the image
    centre_y = (quadrant // 2 + rng.uniform(size=n_patches)) * height / 2
    centre_x = (quadrant % 2 + rng.uniform(size=n_patches)) * width / 2
    top = np.clip(np.round(centre_y - patch_size / 2), 0, height - patch_size).astype(np.intp)
    left = np.clip(np.round(centre_x - patch_size / 2), 0, width - patch_size).astype(np.intp)
    offsets = np.arange(patch_size)
    rows = (top[:, None] + offsets)[:, :, None]  # (n, P, 1)
    columns = (left[:, None] + offsets)[:, None, :]  # (n, 1, P)
    X = images[image[:, None, None], rows, columns]  # (n, P, P, 3)
    return X, y
