"""Exemplar: views labelled by their source image, shapes, tiny images and parameter
checks. (Its triplet loss is tested in test_losses.py.)"""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl.methods.exemplar import ExemplarFeaturizer

from _testing import FAST


def _images(n=6, channels=1, height=8, width=8, seed=0):
    return torch.rand(n, channels, height, width, generator=torch.Generator().manual_seed(seed))


def test_exemplar_views_are_labelled_by_source_image():
    featurizer = ExemplarFeaturizer(**FAST, n_views=3).fit(load_digits().data[:64])
    inputs, labels = featurizer.task_.views(_images(n=5), torch.Generator().manual_seed(0))
    assert inputs.shape == (15, 1, 8, 8)
    assert labels.tolist() == [0, 1, 2, 3, 4] * 3
    assert not torch.equal(inputs[:5], inputs[5:10])  # views differ


# --- shapes, tiny images, parameters --------------------------------------------------


@pytest.mark.parametrize(
    "featurizer",
    [ExemplarFeaturizer(**FAST)],
    ids=["exemplar"],
)
@pytest.mark.parametrize("shape", [(2, 2), (1, 1), (3, 1)])
def test_tiny_images_are_handled(featurizer, shape):
    """No minimum size: masks keep at least one pixel, crops resize whatever is there."""
    X = np.random.default_rng(0).random((20, *shape))
    featurizer = clone(featurizer).fit(X)
    assert featurizer.transform(X).shape[0] == 20
    assert all(math.isfinite(epoch["loss"]) for epoch in featurizer.history_)


@pytest.mark.parametrize(
    "cls, params",
    [
        (ExemplarFeaturizer, {"n_views": 1}),
        (ExemplarFeaturizer, {"mining": "hard"}),
        (ExemplarFeaturizer, {"margin": -0.1}),
        (ExemplarFeaturizer, {"crop_scale": (0.5, 0.2)}),
    ],
)
def test_bad_parameters_raise_value_errors_naming_them(cls, params):
    ((name, _),) = params.items()
    with pytest.raises(ValueError, match=name):
        cls(**params, **FAST).fit(load_digits().data[:32])
