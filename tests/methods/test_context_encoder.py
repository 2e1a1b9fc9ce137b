"""The context encoder: its masked loss, what its task hides and scores, the overlap
band, shapes, tiny images and parameter checks. (Its masks are tested in
test_augment.py.)"""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import augment
from skssl.methods.context_encoder import ContextEncoderFeaturizer, masked_mse

from _testing import FAST


def _images(n=6, channels=1, height=8, width=8, seed=0):
    return torch.rand(n, channels, height, width, generator=torch.Generator().manual_seed(seed))


def test_masked_mse_is_the_mean_over_masked_pixels_only():
    generator = torch.Generator().manual_seed(0)
    target, reconstruction = torch.rand(2, 4, 3, 5, 5, generator=generator)
    hole = torch.rand(4, 1, 5, 5, generator=generator) < 0.3
    loss = masked_mse(reconstruction, target, hole.float())
    squares = [
        float(reconstruction[b, c, i, j] - target[b, c, i, j]) ** 2
        for b in range(4)
        for c in range(3)
        for i in range(5)
        for j in range(5)
        if hole[b, 0, i, j]
    ]
    assert float(loss) == pytest.approx(sum(squares) / len(squares), rel=1e-5)
    changed = torch.where(hole, reconstruction, torch.rand(4, 3, 5, 5, generator=generator))
    assert float(masked_mse(changed, target, hole.float())) == float(loss)  # unmasked pixels ignored


def test_context_encoder_task_hides_the_region_and_scores_only_it():
    featurizer = ContextEncoderFeaturizer(**FAST).fit(load_digits().data[:64])
    task = featurizer.task_
    batch = _images(n=8)
    before = batch.clone()
    inputs, (targets, hole) = task.views(batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch, before)  # the batch is not modified
    assert torch.equal(targets, batch)
    torch.testing.assert_close(inputs, torch.where(hole, task.backbone.mean, batch))
    fraction = hole.float().mean()
    assert 0 < fraction <= 0.25
    # the loss scores the hidden pixels only; the network never sees them
    noise = torch.rand(batch.shape, generator=torch.Generator().manual_seed(1))
    loss = float(task.loss(inputs, (batch, hole)))
    assert float(task.loss(inputs, (torch.where(hole, batch, noise), hole))) == loss
    assert float(task.loss(inputs, (torch.where(hole, noise, batch), hole))) != loss
    same_inputs, _ = task.views(torch.where(hole, noise, batch), torch.Generator().manual_seed(0))
    torch.testing.assert_close(same_inputs, inputs)


def test_context_encoder_overlap_band_weighs_ten_times():
    featurizer = ContextEncoderFeaturizer(**FAST, overlap=1, mask="center").fit(load_digits().data[:64])
    hole = augment.center_mask(_images(n=1), area=0.25)
    weights = featurizer.task_.loss_weights(hole)[0, 0]
    expected = torch.zeros(8, 8)
    expected[1:7, 1:7] = 10.0  # the 1-pixel ring of context around the 4x4 hole
    expected[2:6, 2:6] = 1.0
    torch.testing.assert_close(weights, expected)


# --- shapes, tiny images, parameters --------------------------------------------------


@pytest.mark.parametrize(
    "featurizer",
    [ContextEncoderFeaturizer(mask="random_blocks", **FAST), ContextEncoderFeaturizer(mask="center", **FAST)],
    ids=["random_blocks", "center"],
)
@pytest.mark.parametrize("shape", [(2, 2), (1, 1), (3, 1)])
def test_tiny_images_are_handled(featurizer, shape):
    """No minimum size: masks keep at least one pixel, crops resize whatever is there."""
    X = np.random.default_rng(0).random((20, *shape))
    featurizer = clone(featurizer).fit(X)
    assert featurizer.transform(X).shape[0] == 20
    assert all(math.isfinite(epoch["loss"]) for epoch in featurizer.history_)


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
def test_one_by_n_signals_lose_a_band_of_columns():
    featurizer = ContextEncoderFeaturizer(mask="center", **FAST).fit(np.random.default_rng(0).random((20, 10)))
    hole = augment.center_mask(torch.zeros(1, *featurizer.image_shape_), area=0.25)
    assert featurizer.image_shape_ == (1, 1, 10)
    assert hole[0, 0, 0].tolist() == [False] * 2 + [True] * 5 + [False] * 3


@pytest.mark.parametrize(
    "cls, params",
    [
        (ContextEncoderFeaturizer, {"mask": "ring"}),
        (ContextEncoderFeaturizer, {"mask_size": 0.0}),
        (ContextEncoderFeaturizer, {"mask_size": 1.5}),
        (ContextEncoderFeaturizer, {"n_blocks": 0}),
        (ContextEncoderFeaturizer, {"overlap": -1}),
    ],
)
def test_bad_parameters_raise_value_errors_naming_them(cls, params):
    ((name, _),) = params.items()
    with pytest.raises(ValueError, match=name):
        cls(**params, **FAST).fit(load_digits().data[:32])
