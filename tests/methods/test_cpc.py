"""CPC: its InfoNCE loss and the task's loss over the grid against slow references, the
patch grid and its causal context, image sizes and small images."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skssl._data import check_images
from skssl._training import unit_batches
from skssl.datasets import make_shapes
from skssl.losses import cpc_info_nce
from skssl.methods.cpc import CPCFeaturizer, CPCTask, patch_grid

from _testing import FAST

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)


X_SMALL = X_DIGITS[:96]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _unit_batch(X, side=8):
    return torch.as_tensor(X, dtype=torch.float32).view(-1, 1, side, side) / 16.0


# --- losses against slow references -----------------------------------------------------


def cpc_info_nce_reference(predictions, codes, positive):
    """-log of the positive's share of exp(prediction . code) over all codes, one row at a time."""
    total = 0.0
    for p, target in zip(predictions.tolist(), positive.tolist()):
        scores = [sum(a * b for a, b in zip(p, z)) for z in codes.tolist()]
        top = max(scores)
        log_sum = top + math.log(sum(math.exp(s - top) for s in scores))
        total += log_sum - scores[target]
    return total / len(predictions)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cpc_info_nce_matches_reference(seed):
    predictions, codes = 2 * _randn(5, 4, seed=seed), 2 * _randn(9, 4, seed=seed + 10)
    positive = torch.randint(0, 9, (5,), generator=torch.Generator().manual_seed(seed))
    assert float(cpc_info_nce(predictions, codes, positive)) == pytest.approx(
        cpc_info_nce_reference(predictions, codes, positive), rel=1e-5
    )


def test_cpc_info_nce_keeps_float32_under_autocast():
    predictions, codes, positive = _randn(6, 4).float(), _randn(8, 4, seed=1).float(), torch.arange(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = cpc_info_nce(predictions, codes, positive)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(cpc_info_nce(predictions, codes, positive)), rel=1e-6)


def _cpc_task(X, **kwargs):
    return CPCFeaturizer(**{**FAST, "max_epochs": 0, **kwargs}).fit(X).task_


def test_cpc_task_loss_matches_reference_over_the_grid():
    """Every context (b, i, j) must pick the target of (b, i + k, j) among all patches."""
    task = _cpc_task(X_SMALL[:32]).eval()
    images, _ = task.views(_unit_batch(X_SMALL[:2]), None)  # enlarged to 16x16
    with torch.no_grad():
        z = task.codes(images)  # (2, D, 3, 3)
        targets = task.targets(z)  # (2, T, 3, 3)
        predicted = 0.1 * task.predictors(task.context(z))  # (2, K*T, 3, 3)
        loss = float(task.loss(images, None))
    n, dim, rows, columns = targets.shape
    codes = [(b, i, j) for b in range(n) for i in range(rows) for j in range(columns)]
    all_targets = torch.stack([targets[b, :, i, j] for b, i, j in codes]).double()
    per_offset = []
    for step, k in enumerate(task.offsets):
        queries, positives = [], []
        for b, i, j in codes:
            if i + k < rows:
                queries.append(predicted[b, step * dim : (step + 1) * dim, i, j])
                positives.append(codes.index((b, i + k, j)))
        queries = torch.stack(queries).double()
        per_offset.append(cpc_info_nce_reference(queries, all_targets, torch.tensor(positives)))
    assert task.offsets == (2,)  # 3 rows of 8x8 patches on 8x8 digits enlarged to 16x16
    assert loss == pytest.approx(sum(per_offset) / len(per_offset), rel=1e-5)


# --- the patch grid, the causal context, image sizes ------------------------------------


def test_patch_grid_matches_slicing():
    images = torch.arange(2 * 3 * 8 * 10, dtype=torch.float32).view(2, 3, 8, 10)
    grid = patch_grid(images, (4, 6), (2, 3))  # (B, R, Q, C, h, w)
    assert grid.shape == (2, 3, 2, 3, 4, 6)
    for b in range(2):
        for r in range(3):
            for q in range(2):
                torch.testing.assert_close(grid[b, r, q], images[b, :, 2 * r : 2 * r + 4, 3 * q : 3 * q + 6])


def test_context_sees_only_the_rows_above():
    task = _cpc_task(np.random.default_rng(0).random((32, 784))).eval()
    z = _randn(1, task.context[0].conv.in_channels, 6, 6).float()
    with torch.no_grad():
        context = task.context(z)
        for row in range(5):
            changed = z.clone()
            changed[:, :, row + 1 :] = 0.0  # the rows below ``row``
            torch.testing.assert_close(task.context(changed)[:, :, : row + 1], context[:, :, : row + 1])
            assert not torch.allclose(task.context(changed)[:, :, row + 1 :], context[:, :, row + 1 :])


IMAGES = {
    "digits_8x8": X_DIGITS[:40],
    "mnist_28x28": np.random.default_rng(0).random((40, 784)),
    "colour_16x16": np.repeat(make_shapes(40, random_state=0)[0][..., None], 3, axis=-1),
}


@pytest.mark.parametrize(
    "images, patch, offsets",
    [
        ("digits_8x8", (8, 8), (2,)),  # enlarged to 16x16, as colour_16x16
        ("mnist_28x28", (8, 8), (2, 3, 4)),
        ("colour_16x16", (8, 8), (2,)),  # small_cnn built for 16x16 takes no 4x4 patch
    ],
)
def test_cpc_patch_grid_for_each_image_size(images, patch, offsets):
    task = _cpc_task(IMAGES[images])
    assert isinstance(task, CPCTask) and task.patch == patch and task.stride == (patch[0] // 2, patch[1] // 2)
    assert task.offsets == offsets  # from the first row that does not overlap


@pytest.mark.parametrize(
    "images, n_features", [("digits_8x8", 9 * 128), ("mnist_28x28", 36 * 128), ("colour_16x16", 9 * 128)]
)
def test_transform_encodes_each_patch_of_the_grid_as_in_training(images, n_features):
    X = IMAGES[images]
    featurizer = CPCFeaturizer(**FAST).fit(X)
    features = featurizer.transform(X)
    assert features.shape == (len(X), n_features) == (len(X), featurizer._n_features_out)
    assert features.dtype == np.float32 and np.isfinite(features).all()
    # the patch codes the pretext task scores (the last stage, averaged: 1x1 there), row-major
    task = featurizer.task_
    with torch.no_grad():
        unit = next(unit_batches(check_images(featurizer, X, reset=False), "cpu", featurizer.value_range_, len(X)))
        codes = task.codes(task.views(unit, torch.Generator())[0])  # (B, D, R, Q)
    np.testing.assert_allclose(features, codes.permute(0, 2, 3, 1).flatten(1).numpy(), rtol=1e-4, atol=1e-5)
    whole = featurizer.set_params(readout="image").transform(X)
    assert whole.shape == (len(X), 512) == (len(X), featurizer._n_features_out)


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.parametrize("n_columns", [1, 5, 12])
def test_cpc_resizes_images_smaller_than_8_pixels_up(n_columns):
    X = np.random.default_rng(0).random((20, n_columns))  # 1 x n "images"
    featurizer = CPCFeaturizer(**FAST).fit(X)
    task = featurizer.task_
    inputs, _ = task.views(torch.rand(3, 1, 1, n_columns), torch.Generator())
    assert inputs.shape == (3, 1, *task.size) and min(task.size) >= 8
    assert len(patch_grid(inputs, task.patch, task.stride)[0]) >= 3  # rows
    assert featurizer.transform(X).shape[0] == 20


def test_cpc_patch_size_that_leaves_one_row_is_refused():
    # 8x8 digits are cut at 16x16
    with pytest.raises(ValueError, match="patch_size=12 leaves fewer than 2 rows.*16x16.*at most 11"):
        CPCFeaturizer(**FAST, patch_size=12).fit(X_SMALL)
    assert CPCFeaturizer(**FAST, patch_size=11).fit(X_SMALL).task_.offsets == (1,)  # 2 rows


def test_auto_epochs_keep_a_default_fit_within_its_budget():
    # 200,000 images' worth of steps, at most 30 epochs: digits keep 30, MNIST's 10,000 get 20
    assert [CPCFeaturizer()._epochs(n) for n in (1_297, 10_000, 60_000)] == [30, 20, 4]
    assert CPCFeaturizer(max_epochs=3)._epochs(10_000) == 3
