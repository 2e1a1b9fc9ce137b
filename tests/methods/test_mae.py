"""Masked autoencoders: patches, masking, the masked-patch loss against a slow reference,
the encoder seeing visible patches only, shapes, errors and saved files. (scikit-learn's
checks are in test_common.py, the evidence of learning in test_learning.py.)"""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import load
from skssl.methods import mae
from skssl.methods.mae import (
    MAEFeaturizer,
    MAETask,
    gather_tokens,
    masked_patch_loss,
    n_visible,
    patchify,
    random_shuffle,
    unpatchify,
)

from _testing import FAST

X_SMALL = load_digits().data[:64]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- patches ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, patch", [((2, 1, 8, 8), (2, 2)), ((2, 1, 28, 28), (4, 4)), ((2, 3, 32, 32), (4, 4)), ((2, 1, 1, 6), (1, 2))]
)
def test_unpatchify_inverts_patchify(shape, patch):
    images = _randn(*shape)
    patches = patchify(images, patch)
    grid = (shape[2] // patch[0], shape[3] // patch[1])
    assert patches.shape == (shape[0], grid[0] * grid[1], patch[0] * patch[1] * shape[1])
    torch.testing.assert_close(unpatchify(patches, patch, grid, shape[1]), images, rtol=0, atol=0)


def test_patchify_matches_a_slow_reference():
    images = _randn(2, 3, 4, 6)
    patches = patchify(images, (2, 3))  # a 2 x 2 grid of 2 x 3 patches
    for b in range(2):
        for row in range(2):
            for column in range(2):
                top, left = 2 * row, 3 * column
                expected = [
                    float(images[b, c, top + i, left + j]) for i in range(2) for j in range(3) for c in range(3)
                ]
                assert patches[b, 2 * row + column].tolist() == expected


# --- masking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_patches, ratio, expected",
    [
        (16, 0.75, 4),
        (49, 0.75, 12),
        (64, 0.75, 16),
        (10, 0.9, 1),
        (10, 0.7, 3),
        (4, 0.1, 3),
        (2, 0.75, 1),
        (1, 0.75, 0),
    ],
)
def test_n_visible_shows_one_and_hides_one_at_least(n_patches, ratio, expected):
    assert n_visible(n_patches, ratio) == expected


def test_masking_is_random_per_image_and_reproducible():
    shuffle = random_shuffle(200, 16, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(shuffle.sort(dim=1).values, torch.arange(16).expand(200, 16))  # permutations
    visible = torch.zeros(200, 16).scatter_(1, shuffle[:, :4], 1.0)
    assert len(torch.unique(visible, dim=0)) > 150  # each image its own mask (1,820 possible)
    assert abs(float(visible.mean(dim=0).min()) - 0.25) < 0.1  # every patch equally likely
    assert abs(float(visible.mean(dim=0).max()) - 0.25) < 0.1
    again = random_shuffle(200, 16, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(shuffle, again)
    assert not torch.equal(shuffle, random_shuffle(200, 16, torch.Generator().manual_seed(1), "cpu"))


def test_unshuffling_restores_the_patch_order():
    tokens = _randn(5, 16, 3)
    shuffle = random_shuffle(5, 16, torch.Generator().manual_seed(0), "cpu")
    visible, hidden = gather_tokens(tokens, shuffle[:, :4]), gather_tokens(tokens, shuffle[:, 4:])
    for b in range(5):
        for k in range(4):
            torch.testing.assert_close(visible[b, k], tokens[b, shuffle[b, k]])
    restored = gather_tokens(torch.cat([visible, hidden], dim=1), shuffle.argsort(dim=1))
    torch.testing.assert_close(restored, tokens, rtol=0, atol=0)


# --- the loss ---------------------------------------------------------------------------


def masked_patch_loss_reference(prediction, target, mask, norm_pix_loss, eps=1e-6):
    """MAE's loss written out: per-patch MSE, averaged over the masked patches only."""
    total, count = 0.0, 0
    for b in range(prediction.shape[0]):
        for n in range(prediction.shape[1]):
            if not mask[b, n]:
                continue
            pixels = [float(v) for v in target[b, n]]
            if norm_pix_loss:
                mean = sum(pixels) / len(pixels)
                variance = sum((v - mean) ** 2 for v in pixels) / len(pixels)
                pixels = [(v - mean) / (variance + eps) ** 0.5 for v in pixels]
            total += sum((float(p) - t) ** 2 for p, t in zip(prediction[b, n], pixels)) / len(pixels)
            count += 1
    return total / count


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_masked_patch_loss_matches_reference(norm_pix_loss):
    prediction, target = _randn(3, 16, 4, seed=0), _randn(3, 16, 4, seed=1)
    mask = (torch.rand(3, 16, generator=torch.Generator().manual_seed(2)) < 0.75).double()
    value = masked_patch_loss(prediction, target, mask, norm_pix_loss)
    assert float(value) == pytest.approx(masked_patch_loss_reference(prediction, target, mask, norm_pix_loss), rel=1e-5)


def test_visible_patches_do_not_count():
    prediction, target = _randn(2, 16, 4, seed=0).requires_grad_(True), _randn(2, 16, 4, seed=1)
    mask = torch.zeros(2, 16, dtype=torch.float64)
    mask[:, 4:] = 1.0
    masked_patch_loss(prediction, target, mask).backward()
    assert torch.all(prediction.grad[:, :4] == 0) and torch.all(prediction.grad[:, 4:].abs().sum(-1) > 0)


def test_task_hides_the_shuffled_patches_and_encodes_the_visible_ones_only(monkeypatch):
    task = MAEFeaturizer(**FAST).fit(X_SMALL).task_
    batch = torch.as_tensor(X_SMALL[:6], dtype=torch.float32).view(6, 1, 8, 8) / 16
    inputs, shuffle = task.views(batch, torch.Generator().manual_seed(0))
    seen, calls = [], {}
    task.backbone.stages.block1.attn.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))

    def spy(prediction, target, mask, norm_pix_loss):
        calls.update(prediction=prediction, target=target, mask=mask)
        return masked_patch_loss(prediction, target, mask, norm_pix_loss)

    monkeypatch.setattr(mae, "masked_patch_loss", spy)
    task.loss(inputs, shuffle)
    assert seen == [(6, 4, 192)]  # 4 of the 16 patches reach the encoder
    expected_mask = torch.ones(6, 16).scatter_(1, shuffle[:, :4], 0.0)
    torch.testing.assert_close(calls["mask"], expected_mask)
    standardised = (batch - task.backbone.mean) / task.backbone.std
    torch.testing.assert_close(calls["target"], patchify(standardised, (2, 2)))
    assert calls["prediction"].shape == (6, 16, 4)


def test_loss_stays_float32_under_autocast():
    task = MAEFeaturizer(**FAST).fit(X_SMALL).task_
    batch = torch.as_tensor(X_SMALL[:6], dtype=torch.float32).view(6, 1, 8, 8) / 16
    inputs, shuffle = task.views(batch, torch.Generator().manual_seed(0))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        value = task.loss(inputs, shuffle)
    assert value.dtype == torch.float32 and torch.isfinite(value)


# --- the estimator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "X, n_features",
    [
        (X_SMALL, 192),  # 8x8 digits, 2 px patches
        (np.random.default_rng(0).random((20, 28, 28)), 192),  # MNIST-sized, 4 px patches
        (np.random.default_rng(0).random((20, 32, 32, 3)), 192),  # colour
        (np.random.default_rng(0).random((20, 1)), 192),  # one pixel: one patch, always hidden
    ],
    ids=["8x8", "28x28", "colour", "1x1"],
)
@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
def test_shapes(X, n_features):
    featurizer = MAEFeaturizer(**FAST).fit(X)
    features = featurizer.transform(X[:5])
    assert features.shape == (5, n_features) and features.dtype == np.float32
    assert np.isfinite(features).all() and np.isfinite(featurizer.history_[-1]["loss"])
    assert featurizer.pool_ == "avg" and featurizer.layer_ == "norm"


def test_features_do_not_depend_on_the_batch_for_images():
    featurizer = MAEFeaturizer(**FAST).fit(X_SMALL)
    one_by_one = np.concatenate([featurizer.transform(X_SMALL[i : i + 1]) for i in range(8)])
    np.testing.assert_array_equal(featurizer.transform(X_SMALL)[:8], one_by_one)


def test_a_non_vit_backbone_is_refused():
    with pytest.raises(ValueError, match='backbone="vit_tiny"'):
        MAEFeaturizer(backbone="small_cnn", **FAST).fit(X_SMALL)


def test_decoder_dim_must_split_into_heads():
    with pytest.raises(ValueError, match="decoder_dim"):
        MAEFeaturizer(decoder_dim=30, **FAST).fit(X_SMALL)


def test_save_and_load_recompute_the_fixed_positions(tmp_path):
    featurizer = MAEFeaturizer(**FAST).fit(X_SMALL)
    featurizer.save(tmp_path / "mae.pt")
    np.testing.assert_array_equal(load(tmp_path / "mae.pt").transform(X_SMALL), featurizer.transform(X_SMALL))


def test_decoder_and_mask_token_live_in_the_fitted_task():
    featurizer = MAEFeaturizer(**FAST).fit(X_SMALL)
    assert isinstance(featurizer.task_, MAETask)
    assert "task_.mask_token" not in featurizer.get_params()
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X_SMALL)
    assert not torch.equal(featurizer.task_.mask_token, untrained.task_.mask_token)


def test_auto_epochs_give_every_data_set_the_same_number_of_image_passes(monkeypatch):
    assert [MAEFeaturizer()._epochs(n) for n in (1_000, 10_000, 60_000)] == [100, 20, 4]  # at most 100
    monkeypatch.setattr(MAEFeaturizer, "_auto_epochs", (128, 100))
    for n_images, epochs in ((64, 2), (32, 4)):
        featurizer = MAEFeaturizer(batch_size=32, random_state=0).fit(X_SMALL[:n_images])
        assert featurizer.n_iter_ == epochs
    assert MAEFeaturizer(max_epochs=1, batch_size=32, random_state=0).fit(X_SMALL).n_iter_ == 1
