"""What BaseFeaturizer gives every featurizer: determinism, persistence, composition,
layers and pooling, backbones, image layouts and sizes, parameter and device errors."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

from skssl import (
    ContextEncoderFeaturizer,
    CPCFeaturizer,
    DeepClusterFeaturizer,
    DenoisingAEFeaturizer,
    ExemplarFeaturizer,
    JigsawFeaturizer,
    RelativePositionFeaturizer,
    RotNetFeaturizer,
    SimCLRFeaturizer,
)
from skssl.backbones import pool

from _testing import TINY

FEATURIZERS = [RotNetFeaturizer, SimCLRFeaturizer, DenoisingAEFeaturizer]


@pytest.fixture(scope="module")
def digits(digits):
    X, y = digits
    return X[:160], y[:160]


@pytest.mark.parametrize("cls", FEATURIZERS)
def test_same_seed_gives_bit_identical_embeddings_and_leaves_global_rng(cls, digits):
    X, _ = digits
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = cls(**TINY).fit(X)
    second = cls(**TINY).fit(X)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    assert first.history_ == [{**h, "seconds": first.history_[i]["seconds"]} for i, h in enumerate(second.history_)]
    other = cls(**{**TINY, "random_state": 1}).fit(X)
    assert not np.array_equal(first.transform(X), other.transform(X))


@pytest.mark.parametrize("cls", FEATURIZERS)
def test_transform_is_float32_and_changes_nothing(cls, digits):
    X, _ = digits
    featurizer = cls(**TINY).fit(X)
    before = {k: v for k, v in vars(featurizer).items() if k != "task_"}
    weights = {k: v.clone() for k, v in featurizer.task_.state_dict().items()}
    X_before = X.copy()
    features = featurizer.transform(X)
    assert features.dtype == np.float32 and features.shape == (len(X), featurizer._n_features_out)
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(X, X_before)
    assert {k: v for k, v in vars(featurizer).items() if k != "task_"}.keys() == before.keys()
    for name, value in featurizer.task_.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert not featurizer.task_.training


@pytest.mark.parametrize("cls", FEATURIZERS)
def test_pickle_and_joblib_round_trip_reproduce_transform(cls, digits, tmp_path):
    X, _ = digits
    featurizer = cls(**TINY).fit(X)
    expected = featurizer.transform(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(featurizer)).transform(X), expected)
    joblib.dump(featurizer, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").transform(X), expected)


def test_history_verbose_and_n_iter(digits, capsys):
    X, _ = digits
    featurizer = RotNetFeaturizer(**{**TINY, "max_epochs": 3, "verbose": 1}).fit(X)
    assert featurizer.n_iter_ == 3
    assert [h["epoch"] for h in featurizer.history_] == [1, 2, 3]
    err = capsys.readouterr().err
    assert "epoch   3/3" in err and "loss" in err


def test_feature_names_and_pandas_output(digits):
    pytest.importorskip("pandas")
    X, _ = digits
    featurizer = SimCLRFeaturizer(**TINY).set_output(transform="pandas").fit(X)
    frame = featurizer.transform(X)
    names = featurizer.get_feature_names_out()
    assert list(frame.columns) == list(names)
    assert names[0] == "simclrfeaturizer0" and len(names) == frame.shape[1]


def test_pipeline_grid_search_over_pretext_settings(digits):
    X, y = digits
    pipe = make_pipeline(RotNetFeaturizer(**TINY), LogisticRegression(max_iter=300))
    search = GridSearchCV(
        pipe, {"rotnetfeaturizer__max_epochs": [1, 2], "rotnetfeaturizer__layer": ["conv2", "conv3"]}, cv=2, n_jobs=2
    )
    search.fit(X, y)
    assert set(search.best_params_) == {"rotnetfeaturizer__max_epochs", "rotnetfeaturizer__layer"}
    assert search.best_score_ > 0.3
    assert clone(search.best_estimator_).get_params()["rotnetfeaturizer__max_epochs"] in (1, 2)


def test_layer_and_pool_choose_the_features(digits):
    X, _ = digits
    assert RotNetFeaturizer(**TINY).fit(X).layer_ == "conv2"  # before the last block
    assert SimCLRFeaturizer(**TINY).fit(X).layer_ == "conv3"
    conv1 = RotNetFeaturizer(**{**TINY, "layer": "conv1"}).fit(X)
    assert conv1.transform(X).shape == (len(X), 32 * 4 * 4)  # digits work at 16x16
    averaged = RotNetFeaturizer(**{**TINY, "layer": 0, "pool": "avg"}).fit(X)
    assert averaged.layer_ == "conv1" and averaged.transform(X).shape == (len(X), 32)
    with pytest.raises(ValueError, match="not a stage of this backbone.*conv1"):
        RotNetFeaturizer(**{**TINY, "layer": "fc7"}).fit(X)


def test_max_epochs_zero_keeps_the_initial_weights(digits):
    X, _ = digits
    untrained = RotNetFeaturizer(**{**TINY, "max_epochs": 0}).fit(X)
    trained = RotNetFeaturizer(**TINY).fit(X)
    assert untrained.n_iter_ == 0 and untrained.history_ == []
    assert not np.allclose(untrained.transform(X), trained.transform(X))


class TinyNet(nn.Sequential):
    def __init__(self, channels=1, width=8):
        super().__init__(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))


@pytest.mark.parametrize(
    "backbone, backbone_kwargs, n_features",
    [
        ("mlp", None, 256),
        ("mlp", {"hidden": (32,)}, 32),
        ("resnet18", None, 512),
        (TinyNet, {"width": 4}, 4 * 16 * 16),  # SimCLR works on 8x8 digits enlarged to 16x16
    ],
)
def test_backbones(backbone, backbone_kwargs, n_features, digits):
    X, _ = digits
    featurizer = SimCLRFeaturizer(
        **{**TINY, "batch_size": 8},
        backbone=backbone,
        backbone_kwargs=backbone_kwargs,
        pool="flatten" if backbone is TinyNet else "auto",
    ).fit(X[:16])
    assert featurizer.transform(X[:3]).shape == (3, n_features)


def test_a_module_instance_is_copied_not_trained(digits):
    X, _ = digits
    module = TinyNet()
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    DenoisingAEFeaturizer(**TINY, backbone=module).fit(X[:32])
    for name, value in module.state_dict().items():
        assert torch.equal(value, weights[name])


@pytest.mark.parametrize("cls", FEATURIZERS)
def test_colour_images_in_any_layout(cls):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(24, 12, 12, 3), dtype=np.uint8)
    featurizer = cls(**{**TINY, "batch_size": 8}).fit(nhwc)
    assert featurizer.image_shape_ == (3, 12, 12) and featurizer.value_range_ == (0.0, 255.0)
    np.testing.assert_array_equal(featurizer.transform(nhwc), featurizer.transform(nhwc.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(featurizer.transform(nhwc), featurizer.transform(nhwc.reshape(24, -1)))


def test_rotnet_on_non_square_images_predicts_two_rotations():
    X = np.random.default_rng(0).random((16, 6, 10))
    featurizer = RotNetFeaturizer(**{**TINY, "batch_size": 8}).fit(X)
    assert featurizer.task_.head.out_features == 2
    assert featurizer.task_.backbone.in_shape == (1, 12, 20)  # enlarged 2x, aspect kept


@pytest.mark.parametrize("cls", [RotNetFeaturizer, JigsawFeaturizer, RelativePositionFeaturizer, CPCFeaturizer])
@pytest.mark.parametrize(
    "shape, working",
    [((8, 8), (1, 16, 16)), ((5, 5), (1, 20, 20)), ((16, 16), (1, 16, 16)), ((1, 64), (1, 1, 64))],
)
def test_small_images_are_enlarged_in_fit_and_transform_alike(cls, shape, working):
    X = np.random.default_rng(0).random((32, *shape))
    whole_image = {"readout": "image"} if cls is CPCFeaturizer else {}  # CPC reads patches by default
    featurizer = cls(**TINY, **whole_image).fit(X)
    backbone = featurizer.task_.backbone
    assert backbone.in_shape == working
    unit = torch.as_tensor((X - X.min()) / (X.max() - X.min()), dtype=torch.float32).unsqueeze(1)
    enlarged = torch.nn.functional.interpolate(unit, size=working[1:], mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = pool(backbone(enlarged, upto=featurizer.layer_), featurizer.pool_).numpy()
    np.testing.assert_allclose(featurizer.transform(X), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_epochs": -1}, "max_epochs"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"backbone": "vgg99"}, "backbone"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_parameters_get_a_clear_error(params, message, digits):
    X, _ = digits
    with pytest.raises((ValueError, TypeError), match=message):
        RotNetFeaturizer(**{**TINY, **params}).fit(X)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_says_so(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="CUDA is not available"):
        RotNetFeaturizer(**{**TINY, "device": "cuda"}).fit(X)


def test_divergence_names_the_epoch_and_the_fix(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="epoch 1.*smaller learning_rate"):
        DenoisingAEFeaturizer(**{**TINY, "learning_rate": 1e30, "noise": "gaussian"}).fit(X)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", FEATURIZERS)
def test_cuda_fit_pickles_to_cpu(cls, digits):
    X, _ = digits
    featurizer = cls(**{**TINY, "device": "cuda"}).fit(X)
    assert featurizer.task_.backbone.mean.device.type == "cuda"
    state = featurizer.__getstate__()
    assert state["task_"].backbone.mean.device.type == "cpu"
    restored = pickle.loads(pickle.dumps(featurizer))
    np.testing.assert_allclose(restored.transform(X), featurizer.transform(X), atol=1e-4)


def test_cuda_fitted_state_loads_on_cpu_with_a_warning(digits, monkeypatch):
    """Simulate a pickle written on a GPU machine and opened on one without CUDA."""
    X, _ = digits
    featurizer = RotNetFeaturizer(**TINY).fit(X)
    state = {**featurizer.__getstate__(), "fitted_device_": "cuda:0"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = RotNetFeaturizer.__new__(RotNetFeaturizer)
    with pytest.warns(UserWarning, match="fitted on cuda:0.*runs on the CPU"):
        restored.__setstate__(state)
    np.testing.assert_array_equal(restored.transform(X), featurizer.transform(X))


IMAGE_SIZES = {
    "digits_8x8": np.random.default_rng(0).integers(0, 17, (40, 64)).astype(float),
    "mnist_28x28": np.random.default_rng(0).random((40, 784)),
    "colour_16x16": np.random.default_rng(0).random((40, 16, 16, 3)),
}


@pytest.mark.parametrize("cls", [ContextEncoderFeaturizer, ExemplarFeaturizer, DeepClusterFeaturizer, CPCFeaturizer])
@pytest.mark.parametrize("name", list(IMAGE_SIZES))
def test_features_on_each_image_size(cls, name):
    """Small, MNIST-sized and colour images give the stage's 2 x 2 x 128 features, finite
    (CPC's grid of patches: tests/methods/test_cpc.py)."""
    X = IMAGE_SIZES[name]
    whole_image = {"readout": "image"} if cls is CPCFeaturizer else {}
    features = cls(max_epochs=1, batch_size=16, device="cpu", random_state=0, **whole_image).fit_transform(X)
    assert features.shape == (40, 512) and features.dtype == np.float32
    assert np.isfinite(features).all()
