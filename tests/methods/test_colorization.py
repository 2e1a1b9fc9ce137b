"""Colorization and split-brain (the cross-channel autoencoder built on colorization's
colour-space backbone): shapes, errors, what each network sees, fitted state and
persistence. The colour space itself is tested in test_color.py, the sample patches in
test_datasets.py, scikit-learn's checks in test_common.py, the learning in test_learning.py."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import load
from skssl.color import lab_to_rgb, rgb_to_lab
from skssl.datasets import load_sample_patches
from skssl.methods._color_space import ColorSpaceBackbone
from skssl.methods.colorization import ColorizationFeaturizer, ColorizationTask
from skssl.methods.split_brain import SplitBrainFeaturizer

from _testing import FAST

RNG = np.random.default_rng(0)


COLOUR = RNG.random((24, 8, 8, 3)).astype(np.float32)


DIGITS = load_digits().data[:48]


def test_colorization_refuses_grayscale_images():
    with pytest.raises(ValueError, match="needs colour \\(RGB\\) images.*1 channel"):
        ColorizationFeaturizer(**FAST).fit(DIGITS)
    with pytest.raises(ValueError, match="3 channels"):
        ColorizationFeaturizer(**FAST).fit(np.zeros((8, 6, 6, 4)))


@pytest.mark.parametrize(
    "X, kwargs, n_features",
    [
        (COLOUR, {}, 512),  # 8x8 colour: conv3 is 2x2x128
        (RNG.random((16, 16, 16, 3)), {}, 512),
        (RNG.random((16, 2, 2, 3)), {}, 512),  # tiny: no downsampling, a 2x2 target grid
        (RNG.random((16, 28 * 28 * 3)), {"image_shape": (28, 28, 3)}, 512),
        (COLOUR, {"objective": "regression", "layer": "conv2"}, 256),
        (COLOUR, {"soft_encoding": False, "rebalancing": 1.0, "pool": "avg"}, 128),
    ],
    ids=["8x8", "16x16", "2x2", "28x28-rows", "regression", "hard"],
)
def test_colorization_shapes(X, kwargs, n_features):
    featurizer = ColorizationFeaturizer(**{**FAST, **kwargs}).fit(X)
    features = featurizer.transform(X)
    assert features.shape == (len(X), n_features) and features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.parametrize(
    "X, split, n_features",
    [
        (DIGITS, "halves", 1024),  # two 8x4 halves: 2x2x128 each
        (RNG.random((16, 28, 28)), "halves", 512),  # two 28x14 halves: 2x1x128 each
        (RNG.random((16, 1, 7)), "halves", 512),  # 1 x 7 signals: 1 x 4 halves sharing a column
        (RNG.random((16, 8, 8, 4)), "halves", 1024),  # RGBA: each half predicts 4 channels
        (COLOUR, "lab", 1024),
        (RNG.random((16, 16, 16, 3)), "lab", 1024),
    ],
    ids=["digits", "28x28", "1x7", "rgba", "8x8-colour", "16x16-colour"],
)
def test_split_brain_shapes(X, split, n_features):
    featurizer = SplitBrainFeaturizer(**FAST).fit(X)
    assert featurizer.task_.backbone.split == split
    features = featurizer.transform(X)
    assert features.shape == (len(X), n_features) and features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.filterwarnings("ignore:batch_size=.* is larger than")
def test_one_tiny_image_is_refused_clearly():
    with pytest.raises(ValueError, match="SplitBrainFeaturizer cannot train on n_samples=1"):
        SplitBrainFeaturizer(**FAST).fit(np.ones((1, 1, 10)))  # 1x5 halves: 1x1 maps after conv1
    with pytest.raises(ValueError, match="ColorizationFeaturizer cannot train on n_samples=1"):
        ColorizationFeaturizer(**FAST, image_shape=(1, 1, 3)).fit(np.ones((1, 3)))
    SplitBrainFeaturizer(**FAST).fit(DIGITS[:1])  # room for batch norm: one image trains
    ColorizationFeaturizer(**FAST).fit(COLOUR[:1])


def _unit_batch(X):
    return torch.as_tensor(X, dtype=torch.float32).permute(0, 3, 1, 2)


def _recoloured(X):
    """The same images with their colours halved (same lightness), back in RGB."""
    lab = rgb_to_lab(_unit_batch(X))
    lab[:, 1:] *= 0.5
    rgb = lab_to_rgb(lab)
    torch.testing.assert_close(rgb_to_lab(rgb)[:, 0], rgb_to_lab(_unit_batch(X))[:, 0], atol=1e-3, rtol=0)
    return rgb.permute(0, 2, 3, 1).numpy()


def test_colorization_sees_only_lightness_and_split_brain_sees_both():
    X = 0.2 + 0.6 * COLOUR  # away from the gamut's edge, so that recolouring is exact
    X[0, 0, :2] = [[0, 0, 0], [1, 1, 1]]  # values span [0, 1]: featurizers see them unscaled
    recoloured = _recoloured(X)
    colorization = ColorizationFeaturizer(**FAST).fit(X)
    np.testing.assert_allclose(colorization.transform(recoloured), colorization.transform(X), atol=1e-3)
    split_brain = SplitBrainFeaturizer(**FAST).fit(X)
    before, after = split_brain.transform(X), split_brain.transform(recoloured)
    half = 512  # (128, 2, 2) per sub-network, the L one's channels first
    assert before.shape[1] == 2 * half
    np.testing.assert_allclose(after[:, :half], before[:, :half], atol=1e-3)  # the L sub-network
    assert not np.allclose(after[:, half:], before[:, half:], atol=1e-2)  # the ab sub-network


def test_lab_inputs_are_standardised_with_training_statistics():
    featurizer = ColorizationFeaturizer(**FAST).fit(COLOUR)
    lab = rgb_to_lab(_unit_batch((COLOUR - COLOUR.min()) / (COLOUR.max() - COLOUR.min()))).double()
    backbone = featurizer.task_.backbone
    assert isinstance(backbone, ColorSpaceBackbone)
    torch.testing.assert_close(backbone.mean.flatten(), lab.mean(dim=(0, 2, 3)).float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        backbone.std.flatten(), lab.std(dim=(0, 2, 3), correction=0).float(), rtol=1e-4, atol=1e-4
    )
    gray = SplitBrainFeaturizer(**FAST).fit(DIGITS).task_.backbone  # no conversion: gray-level stats
    assert gray.mean.item() == pytest.approx(DIGITS.mean() / 16, rel=1e-4)


def test_rebalancing_weights_are_fitted_state():
    featurizer = ColorizationFeaturizer(**FAST).fit(COLOUR)
    weights = featurizer.task_.class_weights
    assert "class_weights" in dict(featurizer.task_.named_buffers())
    assert not torch.allclose(weights, torch.ones_like(weights))
    assert "class_weights" not in featurizer.get_params()
    off = ColorizationFeaturizer(**FAST, rebalancing=1.0).fit(COLOUR).task_.class_weights
    torch.testing.assert_close(off, torch.ones_like(off))


@pytest.mark.parametrize(
    "featurizer, X",
    [
        (ColorizationFeaturizer(**FAST), COLOUR),
        (SplitBrainFeaturizer(**FAST), COLOUR),
        (SplitBrainFeaturizer(**FAST), DIGITS),
    ],
    ids=["colorization", "split-brain-colour", "split-brain-gray"],
)
def test_save_load_and_pickle(featurizer, X, tmp_path):
    featurizer.fit(X)
    expected = featurizer.transform(X)
    featurizer.save(tmp_path / "featurizer.pt")
    restored = load(tmp_path / "featurizer.pt")
    assert type(restored.task_.backbone) is ColorSpaceBackbone
    np.testing.assert_array_equal(restored.transform(X), expected)
    for name, value in featurizer.task_.state_dict().items():
        torch.testing.assert_close(restored.task_.state_dict()[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(featurizer)).transform(X), expected)


def test_colorization_behaves_like_an_estimator_on_colour_images():
    """What scikit-learn's checks (which feed grayscale tables) would check, on colour."""
    X = COLOUR.reshape(len(COLOUR), -1)
    featurizer = ColorizationFeaturizer(**FAST, image_shape=(8, 8, 3))
    before = X.copy()
    first = featurizer.fit(X).transform(X)
    np.testing.assert_array_equal(X, before)  # input untouched
    np.testing.assert_array_equal(clone(featurizer).fit(X).transform(X), first)  # idempotent
    np.testing.assert_allclose(featurizer.transform(X[::-1]), first[::-1], atol=1e-6)  # order
    np.testing.assert_allclose(featurizer.transform(X[:5]), first[:5], atol=1e-6)  # subsets
    assert featurizer.n_features_in_ == 192 and featurizer.get_feature_names_out().shape == (512,)
    assert featurizer.fit_transform(X.astype(np.float64)).dtype == np.float32


def test_colorization_encodes_the_training_targets_once_per_fit_and_keeps_them_out_of_the_model(monkeypatch):
    X, _ = load_sample_patches(n_patches=64, random_state=0)
    encoded = []
    original = ColorizationTask._targets_of
    monkeypatch.setattr(
        ColorizationTask, "_targets_of", lambda self, batch: encoded.append(len(batch)) or original(self, batch)
    )
    featurizer = ColorizationFeaturizer(max_epochs=3, batch_size=32, device="cpu", random_state=0).fit(X)
    assert encoded == [64]  # the whole set once, not per epoch or per batch
    task = featurizer.task_.train()
    assert not any(isinstance(value, torch.Tensor) and len(value) == 64 for value in vars(task).values())
    images = torch.as_tensor(X).permute(0, 3, 1, 2).contiguous()
    targets = task.start_training(images, (0.0, 255.0), None)
    batch = images[:8].float() / 255
    _, built = task.views(batch, None)
    torch.testing.assert_close(targets[:8], built)
    torch.testing.assert_close(task(batch, None, targets[:8]), task(batch, None))
    assert len(pickle.dumps(task)) < len(pickle.dumps(featurizer.untrained_task())) + 10_000
