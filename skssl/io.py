"""Reading images from files into the arrays every featurizer takes.

:class:`ImageFolderLoader` is a stateless transformer: a list or column of image
file paths in, a uint8 image array out, decoded with Pillow (which torchvision
brings along) on several threads. As the first step of a pipeline it lets a grid
search or a cross-validation split file names instead of pixel arrays.

Every file is read as a viewer shows it: turned upright by its EXIF orientation,
palette images in their colours, transparent pixels on white, 16-bit and float
images scaled (not clipped) to 0..255. A file that cannot be read raises an error
naming it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from numpy.typing import ArrayLike
from PIL import Image, ImageOps, UnidentifiedImageError
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions

_CHANNELS = {"L": 1, "RGB": 3}

# The largest value of the modes Pillow keeps above 8 bits: it becomes 255. A 16-bit
# PNG opens as "I;16" (or "I" in older Pillow), a 32-bit float TIFF as "F".
_DEPTH_16 = 65535.0
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class _DifferentSizesError(ValueError):
    """Images of different sizes and no ``size`` to resize them to.

    ``details`` names two of them; the command line words the fix its own way.
    """

    def __init__(self, details):
        super().__init__(f"{details}; pass size=(height, width) to resize them all to one size.")
        self.details = details


def _as_size(size):
    """``size`` as ``(height, width)``, or raise a clear error."""
    shape = (size, size) if isinstance(size, Integral) else tuple(size)
    if len(shape) != 2 or not all(isinstance(s, Integral) and s > 0 for s in shape):
        raise ValueError(f"size must be a positive int or (height, width); got {size!r}.")
    return int(shape[0]), int(shape[1])


def _paths(X):
    """The paths in a list, 1-D array, one-column array/DataFrame or Series, as strings."""
    if hasattr(X, "to_numpy"):  # pandas
        X = X.to_numpy()
    elif isinstance(X, (str, os.PathLike)):
        raise TypeError(f"X is a single path ({str(X)!r}); pass a list of paths, e.g. [{str(X)!r}].")
    X = np.asarray(X, dtype=object)
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1:
        raise ValueError(f"X must be a list or one column of image file paths; got an array of shape {X.shape}.")
    if len(X) == 0:
        raise ValueError("X holds no paths; pass at least one image file.")
    bad = [value for value in X if not isinstance(value, (str, os.PathLike))]
    if bad:
        raise TypeError(f"X must hold file paths (str or Path); got {bad[0]!r}.")
    return [os.fspath(value) for value in X]


def _open(path):
    """The decoded image in ``path``, upright; every failure is an error naming the file."""
    try:
        with Image.open(path) as image:
            # Image.open only warns up to twice the limit; transform turns that warning
            # into an error, and this check refuses it where the filter does not reach.
            if Image.MAX_IMAGE_PIXELS is not None and image.width * image.height > Image.MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(
                    f"{image.width}x{image.height} pixels exceed the limit of {Image.MAX_IMAGE_PIXELS}"
                )
            return ImageOps.exif_transpose(image)  # loads the pixels into a copy
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Image file not found: {path!r}. Check the path, or pass root= for paths relative to a folder."
        ) from None
    except IsADirectoryError:
        raise IsADirectoryError(
            f"{path!r} is a directory, not an image file; list the files inside it, e.g. "
            f"sorted(pathlib.Path({path!r}).glob('*.png'))."
        ) from None
    except PermissionError:
        raise PermissionError(f"Permission denied reading {path!r}; make the file readable to this user.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(
            f"Refusing {path!r} as a possible decompression bomb ({exc}). If you trust the file, "
            f"raise PIL.Image.MAX_IMAGE_PIXELS (None lifts the limit)."
        ) from None
    except UnidentifiedImageError:
        raise ValueError(
            f"Cannot read {path!r} as an image: Pillow recognises no image format in it. "
            f"Remove it from X, or convert it to PNG or JPEG."
        ) from None
    except OSError as exc:
        if exc.errno is not None:  # the system's error (a disk, a network share): keep its class
            raise type(exc)(exc.errno, f"Cannot read {path!r}: {exc.strerror}", path) from exc
        raise _unreadable(path, exc) from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise many kinds on corrupt data
        raise _unreadable(path, exc) from exc


def _unreadable(path, exc):
    """The ValueError for a file that Pillow recognises but cannot decode."""
    return ValueError(
        f"Cannot decode {path!r}: {exc}. The file may be truncated or corrupt; re-save it, or remove it from X."
    )


def _to_8_bits(image, path):
    """A 16-bit, 32-bit integer or float image as an 8-bit ``"L"`` image, scaled.

    Pillow's own ``convert`` clips such values to 255 (a 16-bit image would be all
    white). 16-bit values map 0..65535 onto 0..255 (``"I"`` images, which Pillow also
    opens 16-bit files as, must fit that range), float values 0..1 onto 0..255.
    """
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top, kind = 1.0, "float"
    else:
        top, kind = _DEPTH_16, "integer"
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > top:
        raise ValueError(
            f"{path!r} holds {kind} values in [{low:.6g}, {high:.6g}] (Pillow mode {image.mode!r}), "
            f"outside the range [0, {top:.6g}] that ImageFolderLoader scales to 0..255. Convert the file "
            f"to 8 or 16 bits, or read it yourself and pass the array to the featurizer."
        )
    return Image.fromarray(np.rint(values * (255.0 / top)).astype(np.uint8))


def _convert(image, mode, path):
    """``image`` in ``mode``: high-depth values scaled, transparent pixels composited on white."""
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8_bits(image, path)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:  # has_transparency_data needs Pillow 10.1
        # The colour under a transparent pixel is arbitrary (black, white or leftovers);
        # a viewer shows what is on the white page beneath it.
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    try:
        return image.convert(mode)
    except ValueError as exc:
        raise ValueError(
            f"Cannot convert {path!r} from Pillow mode {image.mode!r} to {mode!r}: {exc}. Re-save it as RGB."
        ) from exc


def _read(path, mode, size):
    """One image as a uint8 array ``(H, W)`` for ``"L"`` or ``(H, W, 3)`` for ``"RGB"``."""
    image = _convert(_open(path), mode, path)
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


class ImageFolderLoader(TransformerMixin, BaseEstimator):
    """Load image files into a uint8 image array, for the first step of a pipeline.

    A stateless transformer: ``transform`` reads the files named in ``X`` (a list,
    a 1-D array, a one-column array or DataFrame, or a Series of paths) and
    returns their pixels, ready for any skssl featurizer. Decoding and resizing
    run on ``n_jobs`` threads (Pillow releases the GIL while it decodes).

    Parameters
    ----------
    size : int or tuple of (int, int), default=None
        ``(height, width)`` to resize every image to (bilinear, antialiased when
        shrinking); an int gives a square. ``None`` keeps the files' own size,
        which must then be the same for all of them.
    mode : {"RGB", "L"}, default="RGB"
        Colour (``(n, H, W, 3)``) or grayscale (``(n, H, W)``) output; every file
        is converted to it, as a viewer shows it: turned upright by its EXIF
        orientation, a palette image in its colours, transparent pixels
        composited on white (the colour stored under them is arbitrary). 16-bit
        images (Pillow modes ``"I;16"`` and ``"I"``) are scaled from 0..65535 and
        float images (``"F"``) from 0..1 to 0..255; values outside those ranges
        are refused.
    root : str or path, default=None
        Directory that relative paths in ``X`` are read from; ``None`` reads them
        from the current directory.
    n_jobs : int, default=None
        Threads that decode files; ``None`` means 1, ``-1`` all cores.

    Attributes
    ----------
    n_features_in_ : int
        Always 1: one column of paths.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        From :meth:`transform`, for a path that is missing, a folder, or unreadable.
    ValueError
        From :meth:`transform`, for a file that is not an image, is truncated or
        corrupt, has more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a possible
        decompression bomb), or holds high-depth values out of range. Every error
        names the file.

    See Also
    --------
    skssl.datasets.load_mnist : MNIST from its original files.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from skssl.io import ImageFolderLoader
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     Image.fromarray(np.full((20, 30, 3), 80 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    >>> paths = [f"{i}.png" for i in range(3)]
    >>> ImageFolderLoader(root=folder).transform(paths).shape
    (3, 20, 30, 3)
    >>> ImageFolderLoader(size=8, mode="L", root=folder).transform(paths).shape
    (3, 8, 8)
    """

    _parameter_constraints = {
        "size": [Integral, tuple, list, None],
        "mode": [StrOptions(set(_CHANNELS))],
        "root": [str, os.PathLike, None],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        *,
        size: int | tuple[int, int] | None = None,
        mode: str = "RGB",
        root: str | os.PathLike[str] | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.size = size
        self.mode = mode
        self.root = root
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any = None, y: Any = None) -> ImageFolderLoader:
        """Check the parameters; nothing is learned.

        Parameters
        ----------
        X : ignored
        y : ignored

        Returns
        -------
        self : object
        """
        if self.size is not None:
            _as_size(self.size)
        self.n_features_in_ = 1
        return self

    def transform(self, X: Sequence[str | os.PathLike[str]] | ArrayLike) -> np.ndarray:
        """Read the images named in ``X``.

        Parameters
        ----------
        X : list, ndarray, Series or DataFrame of shape (n_samples,) or (n_samples, 1)
            Image file paths (str or :class:`pathlib.Path`).

        Returns
        -------
        images : ndarray of shape (n_samples, H, W, 3) or (n_samples, H, W), dtype uint8
            In the order of ``X``; ``(H, W)`` is ``size`` when given.
        """
        self._validate_params()
        size = None if self.size is None else _as_size(self.size)
        paths = _paths(X)
        if self.root is not None:
            paths = [os.path.join(self.root, path) for path in paths]
        with warnings.catch_warnings():  # joblib's threads read the same, process-wide filters
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return self._read_all(paths, size)

    def _read_all(self, paths, size):
        """The images at ``paths``, read on ``n_jobs`` threads into one array."""
        first = _read(paths[0], self.mode, size)
        images = np.empty((len(paths), *first.shape), dtype=np.uint8)
        images[0] = first

        def read_into(index):  # written in place: peak memory is the output plus a few images
            image = _read(paths[index], self.mode, size)
            if image.shape != first.shape:
                raise _DifferentSizesError(
                    f"{paths[index]!r} is {image.shape[1]}x{image.shape[0]} pixels but "
                    f"{paths[0]!r} is {first.shape[1]}x{first.shape[0]}"
                )
            images[index] = image

        Parallel(n_jobs=self.n_jobs, require="sharedmem")(delayed(read_into)(index) for index in range(1, len(paths)))
        return images

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags
