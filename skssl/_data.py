"""Input validation: the one place that knows array layouts.

Every featurizer sees images as ``(n, C, H, W)`` arrays. Users hand us flat rows
(``load_digits().data``, MNIST's 784 columns), ``(n, H, W)``, ``(n, H, W, C)`` or
``(n, C, H, W)`` arrays, uint8 or float, NumPy, pandas or PyTorch. :func:`check_images`
validates once and returns a *view* in NCHW order whenever it can, so the caller's
data is never copied wholesale nor modified.
"""

import math
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_array, validate_data

_CHANNELS = (1, 3, 4)

# Float dtypes NumPy holds as they are; other float tensors (bfloat16, float8) become float32.
_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _as_image_shape(image_shape):
    """Return ``image_shape`` as ``(H, W, C)``, or raise a clear error."""
    shape = tuple(image_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or not all(isinstance(s, Integral) and s > 0 for s in shape):
        raise ValueError(
            f"image_shape must be (height, width) or (height, width, channels) with "
            f"positive integers, got {image_shape!r}."
        )
    return tuple(int(s) for s in shape)


def _rows_to_hwc(n_columns, image_shape):
    """Image shape ``(H, W, C)`` that ``n_columns`` flat values per row stand for."""
    if image_shape is not None:
        height, width, channels = _as_image_shape(image_shape)
        if height * width * channels != n_columns:
            raise ValueError(
                f"image_shape={tuple(image_shape)} holds {height * width * channels} "
                f"values per image, but X has {n_columns} columns. Pass an image_shape "
                f"whose product is {n_columns}, e.g. (height, width, channels)."
            )
        return height, width, channels
    side = math.isqrt(n_columns)
    if side * side == n_columns:
        return side, side, 1
    warnings.warn(
        f"X has {n_columns} columns, which is not a square grayscale image; each row "
        f"is treated as a 1 x {n_columns} image (a 1-D signal). Pass "
        f"image_shape=(height, width) or (height, width, channels) if the rows are "
        f"images.",
        UserWarning,
        stacklevel=4,
    )
    return 1, n_columns, 1


def _nd_layout(shape, image_shape, source):
    """Tell whether a 4-D array is ``"nchw"`` or ``"nhwc"``; ``source`` names where
    ``image_shape`` came from, for the error message."""
    if image_shape is not None:
        height, width, channels = _as_image_shape(image_shape)
        if shape[1:] == (height, width, channels):
            return "nhwc"
        if shape[1:] == (channels, height, width):
            return "nchw"
        raise ValueError(
            f"X has images of shape {shape[1:]}, which matches neither "
            f"(H, W, C)={(height, width, channels)} nor (C, H, W)="
            f"{(channels, height, width)} {source}."
        )
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    if last and not first:
        return "nhwc"
    if first and not last:
        return "nchw"
    raise ValueError(
        f"Cannot tell whether X of shape {shape} is (n, H, W, C) or (n, C, H, W). "
        f"Pass image_shape=(height, width, channels) to say which."
    )


def _from_torch(X):
    """A tensor's values as a NumPy array on the CPU, sharing its memory where it can.

    The tensor is read, never modified: a tensor that requires grad is detached, one on
    a GPU is copied to the CPU, and bfloat16 or float8 values become float32 (NumPy has
    no such dtype). Sparse, quantized, nested, complex and meta tensors are refused.
    """
    if X.is_nested or X.layout != torch.strided:
        raise TypeError(
            f"X is a {'nested' if X.is_nested else 'sparse'} torch tensor ({X.layout}), but dense "
            f"data is required. Pass X.to_dense(), or stack the images into one dense tensor."
        )
    if X.is_quantized:
        raise TypeError("X is a quantized torch tensor; pass X.dequantize().")
    if X.device.type == "meta":
        raise ValueError(
            "X is a torch tensor on the meta device, which has a shape but no values; "
            "create or load the images on the CPU or a GPU."
        )
    if X.is_complex():
        raise ValueError(
            "Complex data not supported: X is a complex torch tensor. Pass its real part (X.real) "
            "or its magnitude (X.abs())."
        )
    dtype = torch.float32 if X.is_floating_point() and X.dtype not in _NUMPY_FLOATS else X.dtype
    return X.detach().to(device="cpu", dtype=dtype).resolve_neg().numpy()


def check_images(estimator, X, *, reset, image_shape=None):
    """Validate ``X`` and return it as an ``(n, C, H, W)`` array.

    The result is a view of the validated data whenever the layout allows it; it is
    never written to. On ``reset`` the estimator learns ``n_features_in_`` (values
    per image) and ``image_shape_`` ``(C, H, W)``; otherwise new data must match them.

    Parameters
    ----------
    estimator : BaseEstimator
        The featurizer being fitted or used.
    X : array-like, DataFrame or torch.Tensor
        Flat rows ``(n, H*W*C)``, or ``(n, H, W)``, ``(n, H, W, C)``, ``(n, C, H, W)``.
    reset : bool
        True in ``fit``, False in ``transform``.
    image_shape : tuple or None
        ``(H, W)`` or ``(H, W, C)``; needed where the layout is ambiguous.

    Returns
    -------
    images : ndarray of shape (n, C, H, W)
        uint8 when the input was uint8, else float32 or float64.
    """
    if X is None:
        raise TypeError(
            "X is None; pass images as an array of shape (n_samples, n_pixels), "
            "(n, H, W), (n, H, W, C) or (n, C, H, W)."
        )
    if isinstance(X, torch.Tensor):
        X = _from_torch(X)
    elif not hasattr(X, "shape"):  # lists and other array-likes
        try:
            X = np.asarray(X)
        except ValueError as exc:
            raise ValueError(
                "X is ragged (its rows have different lengths); pass a rectangular array of images."
            ) from exc
    ndim = len(X.shape)
    # uint8 stays uint8 (4x less memory); any other dtype becomes float.
    keep = dict(dtype=["float32", "float64", "uint8"], allow_nd=True)
    if ndim == 2:
        X = validate_data(estimator, X, reset=reset, **keep)
    else:
        if ndim not in (3, 4):
            raise ValueError(
                f"X has {ndim} dimension(s); skssl takes flat rows (n_samples, "
                f"n_pixels) or image arrays (n, H, W), (n, H, W, C), (n, C, H, W). "
                + ("Reshape your data: a single image is X.reshape(1, -1)." if ndim == 1 else "")
            )
        X = check_array(X, input_name="X", **keep)
    n_features = math.prod(X.shape[1:])
    if reset:
        estimator.n_features_in_ = n_features
        if ndim != 2 and hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif ndim != 2 and n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is "
            f"expecting {estimator.n_features_in_} features as input."
        )

    if ndim == 2:
        if reset or image_shape is not None:
            height, width, channels = _rows_to_hwc(X.shape[1], image_shape)
        else:
            channels, height, width = estimator.image_shape_
        images = X.reshape(len(X), height, width, channels).transpose(0, 3, 1, 2)
    elif ndim == 3:
        images = X[:, None]
    else:
        shape, source = image_shape, f"from image_shape={image_shape}"
        if shape is None and not reset:
            channels, height, width = estimator.image_shape_
            shape = (height, width, channels)
            source = f"that {type(estimator).__name__} was fitted on"
        layout = _nd_layout(X.shape, shape, source)
        images = X.transpose(0, 3, 1, 2) if layout == "nhwc" else X

    if min(images.shape[1:]) == 0:
        raise ValueError(
            f"X holds empty images of shape (C, H, W)={tuple(images.shape[1:])}; every "
            f"image needs at least one channel, row and column."
        )
    if reset:
        estimator.image_shape_ = tuple(images.shape[1:])
    elif tuple(images.shape[1:]) != tuple(estimator.image_shape_):
        raise ValueError(
            f"X has images of shape (C, H, W)={tuple(images.shape[1:])}, but "
            f"{type(estimator).__name__} was fitted on {tuple(estimator.image_shape_)}."
        )
    return images


def value_range(images):
    """``(low, high)`` that map the images' values onto [0, 1].

    uint8 images use the full 0..255 range; float images their own min and max,
    so digits (0..16), MNIST (0..255) and normalised data (0..1) all land on [0, 1].
    """
    if images.dtype == np.uint8:
        return 0.0, 255.0
    low, high = float(np.min(images)), float(np.max(images))
    return low, (high if high > low else low + 1.0)


def check_finite_outputs(estimator, outputs, images):
    """Return ``outputs`` (one row per image), or raise a ValueError naming the rows
    whose outputs are NaN or infinite.

    Finite images far beyond the range seen in ``fit`` (``1e300`` where the training
    images held 0..1) overflow inside the network; their features or predictions would
    be NaN, or a class picked from NaN scores, without a word.
    """
    if np.isfinite(outputs).all():
        return outputs
    rows = np.flatnonzero(~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1))
    shown = ", ".join(str(row) for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
    low, high = estimator.value_range_
    bad = images[rows]
    name = type(estimator).__name__
    if bad.min() < low - (high - low) or bad.max() > high + (high - low):
        raise ValueError(
            f"{len(rows)} of {len(outputs)} images (rows {shown}) overflow to NaN or infinite "
            f"outputs in {name}: their values reach [{bad.min():.3g}, {bad.max():.3g}], far beyond "
            f"the range [{low:.3g}, {high:.3g}] of the images it was fitted on. Scale them as the "
            f"training images were (the same units, e.g. 0..255 or 0..1)."
        )
    raise ValueError(
        f"{name} gives NaN or infinite outputs for {len(rows)} of {len(outputs)} images (rows "
        f"{shown}) although their values lie near the training range [{low:.3g}, {high:.3g}]: "
        f"the network's weights may hold NaN or infinity (a diverged training). Refit with a "
        f"lower learning_rate."
    )


def to_tensor(images, device, *, pin=False):
    """Copy a (slice of an) NCHW array to ``device`` in its own dtype.

    uint8 stays uint8 (4x less memory than float); float64 stays float64 until
    :func:`skssl._training.to_unit` scales it, so values beyond float32's range
    survive. ``pin=True`` stages a copy bound for CUDA in page-locked memory, so that
    the transfer runs asynchronously (for batches streamed during training).
    """
    batch = np.ascontiguousarray(images)
    if any(stride < 0 for stride in batch.strides):  # a single reversed image passes as contiguous
        batch = batch.copy()
    if not batch.flags.writeable:
        batch = batch.copy()  # torch.from_numpy warns about read-only memory
    host = torch.from_numpy(batch)
    if pin and torch.device(device).type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)
