"""What the two-view and multi-crop methods share (``skssl.methods._siamese``): the EMA
update of a target network, and DINO's and SwAV's multi-crop views (global views first,
any image size) and parameters."""

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skssl.datasets import make_shapes
from skssl.methods._siamese import TwoViewTask, ema_update
from skssl.methods.dino import DINOFeaturizer
from skssl.methods.swav import SwAVFeaturizer

from _testing import FAST

MULTI_CROP = [DINOFeaturizer, SwAVFeaturizer]


X_SMALL = load_digits().data[:96]


def test_ema_update_moves_parameters_not_buffers():
    target, online = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    torch.nn.init.constant_(online.weight, 3.0)
    online.running_mean.fill_(5.0)
    ema_update(target, online, momentum=0.75)
    torch.testing.assert_close(target.weight, torch.full((3,), 1.5))  # 0.75 * 1 + 0.25 * 3
    torch.testing.assert_close(target.running_mean, torch.zeros(3))


def test_multi_crop_views_put_the_two_global_views_first():
    batch = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    task = DINOFeaturizer(**FAST).fit(X_SMALL).task_
    expected, _ = TwoViewTask.views(task, batch, torch.Generator().manual_seed(1))  # (2B, C, H, W)
    for n_local_crops in (0, 3):
        task = copy.deepcopy(task)
        task.n_local_crops = n_local_crops
        inputs, _ = task.views(batch, torch.Generator().manual_seed(1))
        # local crops at full size, the working size of 8x8 images: 16x16
        assert inputs.shape == (5 * (2 + n_local_crops), 1, 16, 16)
        torch.testing.assert_close(inputs[:10], expected, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.parametrize("cls", MULTI_CROP)
@pytest.mark.parametrize(
    "X, n_features",
    [
        (X_SMALL[:40], 512),  # 8 x 8 digits
        (np.random.default_rng(0).random((24, 28 * 28)), 512),  # MNIST-sized
        (np.repeat(make_shapes(24, image_size=16, random_state=0)[0][..., None], 3, axis=3), 512),  # colour
        (np.random.default_rng(0).random((24, 4)), 512),  # 2 x 2: the smallest square
        (np.random.default_rng(0).random((24, 5)), 512),  # 1 x 5 rows, enlarged to 4 x 20
    ],
    ids=["8x8", "28x28", "colour", "2x2", "1x5"],
)
def test_any_image_size_gives_finite_features(cls, X, n_features):
    """Crops are resized back to the input size, so no image is too small."""
    featurizer = cls(n_local_crops=2, max_epochs=1, batch_size=8, device="cpu", random_state=0)
    features = featurizer.fit_transform(X)
    assert features.shape == (len(X), n_features) and np.isfinite(features).all()


@pytest.mark.parametrize(
    "cls, params, match",
    [
        (DINOFeaturizer, dict(teacher_temperature=(0.04, 0.0)), "teacher_temperature"),
        (DINOFeaturizer, dict(teacher_temperature=(0.04,)), "teacher_temperature"),
        (DINOFeaturizer, dict(local_crop_scale=(0.5, 0.1)), "local_crop_scale"),
        (SwAVFeaturizer, dict(local_crop_scale=(0.0, 0.4)), "local_crop_scale"),
        (SwAVFeaturizer, dict(epsilon=0.0), "epsilon"),
    ],
)
def test_bad_parameters_raise_clear_errors(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**FAST, **params).fit(X_SMALL)
