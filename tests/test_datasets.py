"""Data sets (``skssl.datasets``): digits as images, MNIST from its files, the shapes and
the sample patches."""

import gzip

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from skssl.datasets import SHAPES, load_digits_images, load_mnist, load_sample_patches, make_shapes, read_idx
from skssl.evaluation import pixel_probe


def _idx(array):
    """The idx encoding of a uint8 array: 0, 0, type 0x08, ndim, big-endian dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">i4").tobytes() + array.tobytes()


@pytest.fixture
def tiny_mnist():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([5, 0, 4, 1, 9])


def _write_pair(directory, prefix, X, y, *, gz=False, sep="-"):
    opener, suffix = (gzip.open, ".gz") if gz else (open, "")
    with opener(directory / f"{prefix}-images{sep}idx3-ubyte{suffix}", "wb") as f:
        f.write(_idx(X))
    with opener(directory / f"{prefix}-labels{sep}idx1-ubyte{suffix}", "wb") as f:
        f.write(_idx(y))
    return directory / f"{prefix}-images{sep}idx3-ubyte{suffix}"


def test_load_digits_images():
    X, y = load_digits_images()
    assert X.shape == (1797, 8, 8) and X.dtype == np.float32
    assert X.min() == 0 and X.max() == 16
    assert y.shape == (1797,) and y.dtype == np.int64 and set(y) == set(range(10))
    X_few, y_few = load_digits_images(n_samples=10)
    np.testing.assert_array_equal(X_few, X[:10])
    np.testing.assert_array_equal(y_few, y[:10])


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("subset, prefix", [("train", "train"), ("test", "t10k")])
def test_load_mnist_reads_idx_directories(tmp_path, tiny_mnist, gz, subset, prefix):
    X, y = tiny_mnist
    _write_pair(tmp_path, prefix, X, y, gz=gz)
    X_read, y_read = load_mnist(tmp_path, subset=subset)
    assert X_read.dtype == np.uint8 and y_read.dtype == np.int64
    np.testing.assert_array_equal(X_read, X)
    np.testing.assert_array_equal(y_read, y)
    assert X_read.flags.writeable


@pytest.mark.parametrize("sep", ["-", "."])
def test_load_mnist_reads_an_images_file_and_finds_its_labels(tmp_path, tiny_mnist, sep):
    X, y = tiny_mnist
    images = _write_pair(tmp_path, "t10k", X, y, gz=True, sep=sep)
    X_read, y_read = load_mnist(str(images))
    np.testing.assert_array_equal(X_read, X)
    np.testing.assert_array_equal(y_read, y)


def test_load_mnist_reads_torchvision_layout(tmp_path, tiny_mnist):
    X, y = tiny_mnist
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    _write_pair(tmp_path / "MNIST" / "raw", "train", X, y)
    np.testing.assert_array_equal(load_mnist(tmp_path)[0], X)


@pytest.mark.parametrize("flat", [False, True])
def test_load_mnist_reads_npz(tmp_path, tiny_mnist, flat):
    X, y = tiny_mnist
    np.savez(tmp_path / "mnist.npz", X=X.reshape(5, -1) if flat else X, y=y.astype(np.uint8))
    X_read, y_read = load_mnist(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(X_read, X)
    assert y_read.dtype == np.int64
    np.testing.assert_array_equal(y_read, y)


def test_load_mnist_missing_files_say_what_and_where(tmp_path, tiny_mnist):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte") as info:
        load_mnist(tmp_path / "nowhere")
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message and ".npz" in message
    assert "never downloads" in message and "torchvision.datasets.MNIST" in message
    X, y = tiny_mnist
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(X))  # labels missing
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, subset="test")


def test_load_mnist_rejects_bad_files(tmp_path, tiny_mnist):
    X, y = tiny_mnist
    np.savez(tmp_path / "wrong_keys.npz", images=X, labels=y)
    with pytest.raises(ValueError, match="expected 'X' and 'y'"):
        load_mnist(tmp_path / "wrong_keys.npz")
    np.savez(tmp_path / "float.npz", X=X / 255.0, y=y)
    with pytest.raises(ValueError, match="uint8"):
        load_mnist(tmp_path / "float.npz")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(y))
    with pytest.raises(ValueError, match="not an idx file"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(X[:4]))
    with pytest.raises(ValueError, match="n labels"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="subset"):
        load_mnist(tmp_path, subset="validation")


def test_read_idx_header_by_hand(tmp_path):
    # type 0x0C (int32), 2 dimensions 2 x 1, values 1 and -2 big-endian
    raw = bytes([0, 0, 0x0C, 2, 0, 0, 0, 2, 0, 0, 0, 1]) + np.array([1, -2], ">i4").tobytes()
    (tmp_path / "values.idx").write_bytes(raw)
    values = read_idx(tmp_path / "values.idx")
    np.testing.assert_array_equal(values, [[1], [-2]])
    assert values.dtype == np.int32 and values.dtype.isnative


def test_make_shapes_is_a_balanced_seeded_image_set():
    X, y = make_shapes(100, image_size=16, random_state=0)
    assert X.shape == (100, 16, 16) and X.dtype == np.float32
    assert set(np.unique(X)) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.bincount(y), [25] * len(SHAPES))
    assert (X.sum(axis=(1, 2)) >= 4).all()  # every image shows a shape
    again, y_again = make_shapes(100, image_size=16, random_state=0)
    np.testing.assert_array_equal(again, X)
    np.testing.assert_array_equal(y_again, y)
    assert not np.array_equal(make_shapes(100, image_size=16, random_state=1)[0], X)
    noisy, _ = make_shapes(20, image_size=24, noise=0.2, random_state=0)
    assert noisy.shape == (20, 24, 24) and 0 <= noisy.min() and noisy.max() <= 1
    with pytest.raises(ValueError, match="at least 8"):
        make_shapes(10, image_size=4)


def test_make_shapes_classes_are_learnable():
    # The shapes move and change size, so raw pixels are a weak but clearly
    # better-than-chance (0.25) representation: 0.70, 0.71, 0.72 cross-validated
    # for seeds 0, 1, 2 when the threshold was set.
    X, y = make_shapes(400, image_size=16, random_state=0)
    accuracy = cross_val_score(LogisticRegression(max_iter=500), X.reshape(400, -1), y, cv=3).mean()
    assert accuracy > 0.5


def test_load_sample_patches():
    X, y = load_sample_patches(random_state=0)
    assert X.shape == (2000, 16, 16, 3) and X.dtype == np.uint8
    assert y.shape == (2000,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [250] * 8
    X_again, y_again = load_sample_patches(random_state=0)
    np.testing.assert_array_equal(X, X_again)
    np.testing.assert_array_equal(y, y_again)
    assert not np.array_equal(load_sample_patches(random_state=1)[0], X)
    X_odd, y_odd = load_sample_patches(patch_size=5, n_patches=13, random_state=0)
    assert X_odd.shape == (13, 5, 5, 3) and sorted(np.bincount(y_odd).tolist()) == [1] * 3 + [2] * 5
    assert load_sample_patches(patch_size=106, n_patches=8, random_state=0)[0].shape == (8, 106, 106, 3)
    for bad in ({"patch_size": 3}, {"patch_size": 107}, {"n_patches": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            load_sample_patches(**bad)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sample_patches_are_a_task_neither_trivial_nor_hopeless():
    X, y = load_sample_patches(random_state=0)
    accuracy = pixel_probe(X[:300], y[:300], X[1000:], y[1000:])
    assert 0.25 < accuracy < 0.6, accuracy  # chance: 0.125; seeds 0, 1, 2 gave 0.42, 0.41, 0.41
