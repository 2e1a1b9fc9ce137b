"""Bad input gets a clear ValueError/TypeError naming the problem and the fix, and the
caller's data is never modified."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import NotFittedError

import skssl
from skssl import DenoisingAEFeaturizer, RotNetFeaturizer
from skssl.registry import METHODS

from _testing import fit_settings

FEATURIZERS = [method.estimator for method in METHODS.values()]  # every registered method
TINY = fit_settings(1, 8)
GOOD = np.random.default_rng(0).random((16, 64))
NEEDS_COLOUR = (skssl.ColorizationFeaturizer,)


def _as_input_for(cls, X):
    """``X`` as it is, or as 3-channel rows for featurizers that need colour."""
    if cls not in NEEDS_COLOUR:
        return X
    return np.repeat(np.asarray(X).reshape(len(X), -1)[..., None], 3, axis=-1).reshape(len(X), -1)


BAD_X = [
    ("nan", np.where(np.eye(16, 64) > 0, np.nan, GOOD), {}, ValueError, "NaN"),
    ("+inf", np.where(np.eye(16, 64) > 0, np.inf, GOOD), {}, ValueError, "infinity"),
    ("-inf", np.where(np.eye(16, 64) > 0, -np.inf, GOOD), {}, ValueError, "infinity"),
    ("empty", np.zeros((0, 64)), {}, ValueError, "0 sample"),
    ("1-D", GOOD[0], {}, ValueError, "Reshape your data"),
    ("5-D", np.zeros((2, 1, 1, 8, 8)), {}, ValueError, "5 dimension"),
    ("object strings", np.full((16, 64), "a", dtype=object), {}, ValueError, "convert"),
    ("unicode strings", np.full((16, 64), "a"), {}, ValueError, "convert|numeric"),
    ("complex", GOOD.astype(complex), {}, ValueError, "Complex data not supported"),
    ("sparse", sp.csr_matrix(GOOD), {}, TypeError, "dense data is required.*toarray"),
    ("ragged", [[0.0] * 64, [0.0] * 63], {}, ValueError, "ragged"),
    ("None", None, {}, TypeError, "X is None"),
    ("image_shape mismatch", GOOD, {"image_shape": (7, 7)}, ValueError, "holds 49 values.*64 columns"),
    ("ambiguous 4-D layout", np.zeros((4, 3, 8, 3)), {}, ValueError, "Cannot tell.*image_shape"),
    ("sparse tensor", torch.tensor(GOOD).to_sparse(), {}, TypeError, "sparse torch tensor.*to_dense"),
    ("complex tensor", torch.tensor(GOOD, dtype=torch.complex64), {}, ValueError, "Complex data not supported"),
    ("meta tensor", torch.empty(16, 64, device="meta"), {}, ValueError, "meta device"),
]

BAD_PARAMETERS = [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"max_epochs": -1}, ValueError, "max_epochs"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ({"learning_rate": -1.0}, ValueError, "learning_rate"),
    ({"backbone": "vgg99"}, ValueError, "backbone"),
    ({"backbone": 3}, ValueError, "backbone"),
    ({"device": "tpu"}, ValueError, "device"),
    ({"precision": "float16"}, ValueError, "precision"),
    ({"compile": "yes"}, ValueError, "compile"),
    ({"layer": "fc9"}, ValueError, "not a stage"),
    ({"layer": 7}, ValueError, "out of range"),
    ({"backbone_kwargs": {"n_wings": 3}}, TypeError, "backbone_kwargs"),
]


@pytest.mark.parametrize("cls", FEATURIZERS)
@pytest.mark.parametrize("name, X, params, error, message", BAD_X, ids=[row[0] for row in BAD_X])
def test_bad_x(cls, name, X, params, error, message):
    before = None if X is None or isinstance(X, (list, torch.Tensor)) else X.copy()
    with pytest.raises(error, match=message):
        cls(**TINY, **params).fit(X)
    if before is not None:
        assert (X != before).nnz == 0 if sp.issparse(X) else np.array_equal(X, before, equal_nan=X.dtype.kind == "f")


@pytest.mark.parametrize("cls", FEATURIZERS)
@pytest.mark.parametrize("params, error, message", BAD_PARAMETERS, ids=[str(p[0]) for p in BAD_PARAMETERS])
def test_bad_parameters(cls, params, error, message):
    with pytest.raises(error, match=message):
        cls(**{**TINY, **params}).fit(GOOD)


@pytest.mark.parametrize("cls", FEATURIZERS)
def test_transform_errors(cls):
    colour = cls in NEEDS_COLOUR
    featurizer = cls(**TINY, image_shape=(8, 8, 3) if colour else None)
    X = _as_input_for(cls, GOOD)
    with pytest.raises(NotFittedError):
        featurizer.transform(X)
    featurizer.fit(X)
    with pytest.raises(ValueError, match=f"X has 81 features, but .* expecting {X.shape[1]}"):
        featurizer.transform(np.zeros((2, 81)))
    with pytest.raises(ValueError, match="fitted on"):
        featurizer.transform(np.zeros((2, 4, 16 * (3 if colour else 1))))
    with pytest.raises(ValueError, match="NaN"):
        featurizer.transform(np.full(X[:2].shape, np.nan))


def test_fewer_images_than_a_batch_warns_and_trains():
    with pytest.warns(UserWarning, match="batch_size=64 is larger than the 10 training images"):
        featurizer = RotNetFeaturizer(max_epochs=1, batch_size=64, device="cpu").fit(GOOD[:10])
    assert featurizer.n_iter_ == 1


@pytest.mark.parametrize("cls", FEATURIZERS)
def test_unusual_but_valid_arrays(cls):
    """bool, int64, huge values, Fortran order, read-only, a single sample: finite features."""
    rng = np.random.default_rng(0)
    read_only = rng.random((16, 64))
    read_only.flags.writeable = False
    for X in [
        rng.random((16, 64)) > 0.5,
        rng.integers(-(2**40), 2**40, size=(16, 64)),
        rng.random((16, 64)) * 1e300,  # beyond float32
        np.asfortranarray(rng.random((16, 8, 8))),
        read_only,
    ]:
        if cls in NEEDS_COLOUR:
            X = np.stack([X] * 3, axis=-1).reshape(16, 8, 8, 3)
        featurizer = cls(**TINY).fit(X)
        assert np.isfinite(featurizer.transform(X)).all()
        assert np.isfinite(featurizer.transform(X[:1])).all()


# -- PyTorch tensors and overflow at transform ------------------------------------------


def _fitted(cls, X):
    return cls(**TINY, image_shape=(8, 8, 3) if cls in NEEDS_COLOUR else None).fit(X)


@pytest.mark.parametrize("cls", FEATURIZERS)
def test_torch_tensors_are_read_like_arrays(cls):
    """A CPU tensor of any float dtype or uint8, requiring grad or not, gives the features
    of the same values as a NumPy array; the tensor is left as it was."""
    values = _as_input_for(cls, GOOD).astype(np.float32)
    X = torch.tensor(values, requires_grad=True)
    featurizer = _fitted(cls, X)
    np.testing.assert_array_equal(featurizer.transform(values), _fitted(cls, values).transform(values))
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        tensor = X.to(dtype)  # still requires grad
        as_array = tensor.detach().float().numpy() if dtype == torch.bfloat16 else tensor.detach().numpy()
        np.testing.assert_array_equal(featurizer.transform(tensor), featurizer.transform(as_array))
    pixels = (X.detach() * 255).to(torch.uint8)
    np.testing.assert_array_equal(featurizer.embed(pixels), featurizer.embed(pixels.numpy()))
    torch.testing.assert_close(X.detach(), torch.tensor(values), rtol=0, atol=0)
    assert X.requires_grad and X.grad is None


def _with_huge_rows(X, huge, dtype):
    X = X.astype(dtype)
    X[[3, 7]] = huge
    return X


HUGE = [(1e300, np.float64), (3e38, np.float32)]  # beyond float32; near its top


@pytest.mark.parametrize("cls", [*FEATURIZERS, skssl.RandomFeaturizer])
def test_transform_names_the_rows_whose_features_overflow(cls):
    X = _as_input_for(cls, GOOD)
    if cls is skssl.RandomFeaturizer:
        featurizer = cls(device="cpu", random_state=0).fit(X)
    else:
        featurizer = _fitted(cls, X)
    for huge, dtype in HUGE:
        Z = _with_huge_rows(X, huge, dtype)
        with pytest.raises(ValueError, match=r"2 of 16 images \(rows 3, 7\) overflow .*far beyond the range"):
            featurizer.transform(Z)
        with pytest.raises(ValueError, match=r"rows 3, 7"):
            featurizer.embed(Z)
    assert np.isfinite(featurizer.transform(X * 10)).all()  # out of range but finite: no error


@pytest.fixture(scope="module")
def classifiers():
    y = np.arange(len(GOOD)) % 2
    return [
        skssl.SupervisedClassifier(**TINY).fit(GOOD, y),
        skssl.FineTunedClassifier(RotNetFeaturizer(**TINY), **TINY).fit(GOOD, y),
    ]


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba", "decision_function", "transform"])
def test_classifier_outputs_name_the_rows_that_overflow(classifiers, method):
    for classifier in classifiers:
        for huge, dtype in HUGE:
            with pytest.raises(ValueError, match=r"2 of 16 images \(rows 3, 7\) overflow"):
                getattr(classifier, method)(_with_huge_rows(GOOD, huge, dtype))
        assert np.isfinite(getattr(classifier, method)(GOOD * 10).astype(float)).all()


def test_classifiers_read_torch_tensors(classifiers):
    X = torch.tensor(GOOD, dtype=torch.bfloat16, requires_grad=True)
    as_array = X.detach().float().numpy()
    for classifier in classifiers:
        np.testing.assert_array_equal(classifier.predict_proba(X), classifier.predict_proba(as_array))
        np.testing.assert_array_equal(classifier.transform(X), classifier.transform(as_array))
    assert X.grad is None


ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_]),
    shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=9),
    elements={"allow_nan": True, "allow_infinity": True},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=ARRAYS)
def test_fuzzed_inputs_are_accepted_or_refused_clearly(X):
    """Any shape and dtype: a documented error, or finite features from finite input."""
    before = X.copy()
    featurizer = DenoisingAEFeaturizer(max_epochs=1, batch_size=4, device="cpu", random_state=0)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            features = featurizer.fit(X).transform(X)
    except (ValueError, TypeError) as exc:
        assert str(exc)  # a message, not a bare exception
    else:
        if np.isfinite(X.astype(np.float64)).all():
            assert np.isfinite(features).all()
    np.testing.assert_array_equal(X, before)
