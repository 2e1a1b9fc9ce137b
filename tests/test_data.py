"""Input layouts: every accepted layout gives the same NCHW images, nothing is modified."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator

from skssl._data import check_finite_outputs, check_images, to_tensor, value_range


class Holder(BaseEstimator):
    """A bare estimator to receive fitted input attributes."""


def _nchw(n=5, channels=3, height=6, width=5, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, channels, height, width)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize(
    "layout, image_shape",
    [
        ("nchw", None),
        ("nhwc", None),
        ("rows", (6, 5, 3)),
        ("nhwc", (6, 5, 3)),
        ("nchw", (6, 5, 3)),
    ],
)
def test_layouts_agree(layout, image_shape, dtype):
    expected = _nchw(dtype=dtype)
    X = {
        "nchw": expected,
        "nhwc": expected.transpose(0, 2, 3, 1),
        "rows": expected.transpose(0, 2, 3, 1).reshape(5, -1),
    }[layout].copy()
    before = X.copy()
    images = check_images(Holder(), X, reset=True, image_shape=image_shape)
    np.testing.assert_array_equal(images, expected)
    assert images.dtype == dtype
    np.testing.assert_array_equal(X, before)


def test_square_rows_are_grayscale_images_and_nhw_is_grayscale():
    holder = Holder()
    images = check_images(holder, np.zeros((3, 64)), reset=True)
    assert images.shape == (3, 1, 8, 8)
    assert holder.image_shape_ == (1, 8, 8) and holder.n_features_in_ == 64
    assert check_images(Holder(), np.zeros((3, 28, 28)), reset=True).shape == (3, 1, 28, 28)


def test_non_square_rows_fall_back_to_one_row_signals():
    with pytest.warns(UserWarning, match="not a square grayscale image"):
        images = check_images(Holder(), np.zeros((4, 10)), reset=True)
    assert images.shape == (4, 1, 1, 10)


def test_dataframe_rows_record_feature_names():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.arange(32.0).reshape(2, 16), columns=[f"p{i}" for i in range(16)])
    holder = Holder()
    assert check_images(holder, frame, reset=True).shape == (2, 1, 4, 4)
    assert list(holder.feature_names_in_) == list(frame.columns)


def test_rows_are_viewed_not_copied():
    X = np.arange(2 * 64, dtype=np.float64).reshape(2, 64)
    assert np.shares_memory(check_images(Holder(), X, reset=True), X)


@pytest.mark.parametrize(
    "X, image_shape, message",
    [
        (None, None, "X is None"),
        (np.zeros(64), None, "1 dimension"),
        (np.zeros((2, 1, 8, 8, 1)), None, "5 dimension"),
        (np.zeros((2, 64)), (8, 9), "holds 72 values"),
        (np.zeros((2, 64)), (8, 8, 0), "positive integers"),
        (np.zeros((2, 3, 8, 3)), None, "Cannot tell whether"),
        (np.zeros((2, 5, 8, 7)), None, "Cannot tell whether"),
        (np.zeros((2, 8, 8, 3)), (4, 4, 3), "matches neither"),
        (np.full((2, 64), np.nan), None, "NaN"),
        (np.full((2, 64), np.inf), None, "infinity"),
        (np.zeros((0, 64)), None, "0 sample"),
        ([[1.0, 2.0], [1.0]], None, "ragged"),
        (np.array([["a"] * 4] * 2, dtype=object), None, "could not convert|numeric"),
        (np.zeros((2, 4), dtype=complex), None, "Complex"),
    ],
)
def test_bad_input_gets_a_clear_error(X, image_shape, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_images(Holder(), X, reset=True, image_shape=image_shape)


def test_transform_input_must_match_fit():
    holder = Holder()
    check_images(holder, np.zeros((2, 8, 8)), reset=True)
    with pytest.raises(ValueError, match="expecting 64 features"):
        check_images(holder, np.zeros((2, 9, 9)), reset=False)
    with pytest.raises(ValueError, match="expecting 64 features"):
        check_images(holder, np.zeros((2, 81)), reset=False)
    with pytest.raises(ValueError, match="fitted on"):
        check_images(holder, np.zeros((2, 1, 4, 16)), reset=False)
    assert check_images(holder, np.zeros((3, 64)), reset=False).shape == (3, 1, 8, 8)


@pytest.mark.parametrize(
    "X, expected",
    [
        (np.array([[0, 255]], dtype=np.uint8), (0.0, 255.0)),
        (np.array([[0.0, 16.0]]), (0.0, 16.0)),
        (np.array([[-1.0, 1.0]]), (-1.0, 1.0)),
        (np.array([[3.0, 3.0]]), (3.0, 4.0)),
    ],
)
def test_value_range(X, expected):
    assert value_range(X) == expected


# -- PyTorch tensors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (torch.float16, np.float32),
        (torch.bfloat16, np.float32),
        (torch.float32, np.float32),
        (torch.float64, np.float64),
        (torch.uint8, np.uint8),
    ],
)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_tensors_are_read_as_their_values(dtype, expected, requires_grad):
    values = _nchw(dtype=np.float32)  # integers 0..255: exact in every dtype but float16/bfloat16's top
    X = torch.tensor(values).to(dtype).requires_grad_(requires_grad and dtype.is_floating_point)
    before = X.detach().clone()
    images = check_images(Holder(), X, reset=True)
    assert images.dtype == expected
    np.testing.assert_array_equal(images, X.detach().float().numpy())
    torch.testing.assert_close(X.detach(), before, rtol=0, atol=0)
    assert X.grad is None


def test_a_float32_tensor_is_viewed_not_copied():
    X = torch.rand(2, 8, 8, 3)  # NHWC: the NCHW view is a transpose of the tensor's memory
    images = check_images(Holder(), X, reset=True)
    assert images.shape == (2, 3, 8, 8)
    assert np.shares_memory(images, X.numpy())
    strided = torch.rand(64, 2).T  # not contiguous
    np.testing.assert_array_equal(check_images(Holder(), strided, reset=True).reshape(2, 64), strided.numpy())


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: torch.zeros(2, 64).to_sparse(), TypeError, "sparse torch tensor .*dense data is required.*to_dense"),
        (lambda: torch.zeros(2, 64).to_sparse_csr(), TypeError, "sparse torch tensor .*to_dense"),
        (lambda: torch.zeros(2, 64, dtype=torch.complex64), ValueError, "Complex data not supported.*X.real"),
        (lambda: torch.empty(2, 64, device="meta"), ValueError, "meta device, which has a shape but no values"),
        (lambda: torch.quantize_per_tensor(torch.zeros(2, 64), 0.1, 0, torch.quint8), TypeError, "dequantize"),
    ],
    ids=["sparse-coo", "sparse-csr", "complex", "meta", "quantized"],
)
def test_tensors_that_hold_no_plain_values_are_refused(make, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # CSR "in beta", quantized tensors deprecated
        X = make()
    with pytest.raises(error, match=message):
        check_images(Holder(), X, reset=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_tensor_is_read_on_the_cpu():
    X = torch.rand(2, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    images = check_images(Holder(), X, reset=True)
    assert isinstance(images, np.ndarray) and images.dtype == np.float32
    np.testing.assert_array_equal(images.reshape(2, 64), X.detach().float().cpu().numpy())


def test_to_tensor_takes_negative_strides_and_copies_only_those():
    X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    # one image of a reversed array is "contiguous" to NumPy, its stride still negative
    for view in (X[::-1], X[:, :, ::-1, ::-2], X[::-1][:1]):
        np.testing.assert_array_equal(to_tensor(view, "cpu").numpy(), view)
    assert to_tensor(X, "cpu").data_ptr() == X.ctypes.data


# -- overflow at transform -------------------------------------------------------------


def test_non_finite_outputs_name_the_rows_and_the_range():
    holder = Holder()
    holder.value_range_ = (0.0, 1.0)
    images = np.full((10, 1, 2, 2), 0.5)
    images[[1, 2, 4, 5, 7, 9], 0, 0, 0] = 1e300
    outputs = np.ones((10, 3))
    outputs[[1, 2, 4, 5, 7, 9], 1] = [np.nan, np.inf, -np.inf, np.nan, np.inf, np.nan]
    with pytest.raises(
        ValueError, match=r"6 of 10 images \(rows 1, 2, 4, 5, 7, \.\.\.\) overflow .*\[0.5, 1e\+300\].*\[0, 1\]"
    ):
        check_finite_outputs(holder, outputs, images)
    with pytest.raises(ValueError, match=r"1 of 10 images \(rows 3\).*near the training range.*learning_rate"):
        check_finite_outputs(
            holder, np.where(np.arange(10)[:, None] == 3, np.nan, outputs[[0]]), np.zeros((10, 1, 2, 2))
        )
    finite = np.ones((10, 3))
    assert check_finite_outputs(holder, finite, images) is finite
