"""Context encoder and Exemplar: the triplet loss and the masks against slow references,
shapes, tiny images, scikit-learn's checks, and evidence that each learns."""

import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from skssl import augment
from skssl import load
from skssl.evaluation import linear_probe
from skssl.losses import triplet_loss
from skssl.methods.context_encoder import ContextEncoderFeaturizer, masked_mse
from skssl.methods.exemplar import ExemplarFeaturizer

FAST = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
CLASSES = [ContextEncoderFeaturizer, ExemplarFeaturizer]


# --- the triplet loss against a slow, obvious reference ---------------------------------


def triplet_reference(embeddings, labels, margin, mining):
    """Triplets written out one anchor at a time, on squared distances of unit vectors."""
    z = [[float(v) / math.sqrt(sum(float(u) ** 2 for u in row)) for v in row] for row in embeddings]
    labels = [int(label) for label in labels]

    def distance(i, j):
        return sum((a - b) ** 2 for a, b in zip(z[i], z[j]))

    losses = []
    for a in range(len(z)):
        positives = [p for p in range(len(z)) if p != a and labels[p] == labels[a]]
        negatives = [distance(a, n) for n in range(len(z)) if labels[n] != labels[a]]
        if not positives or not negatives:
            continue
        if mining == "batch_hard":
            hardest = max(distance(a, p) for p in positives)
            losses.append(max(0.0, hardest - min(negatives) + margin))
        else:
            for p in positives:
                farther = [d for d in negatives if d > distance(a, p)]
                negative = min(farther) if farther else max(negatives)
                losses.append(max(0.0, distance(a, p) - negative + margin))
    return sum(losses) / max(len(losses), 1)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_triplet_loss_matches_reference(mining, margin, seed):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(14, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5, 5])  # 4 is alone: no positive
    expected = triplet_reference(embeddings, labels, margin, mining)
    assert float(triplet_loss(embeddings, labels, margin, mining)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_triplet_loss_gradients_are_finite_without_negatives_or_positives(mining):
    for labels in (torch.zeros(4, dtype=torch.long), torch.arange(4)):
        embeddings = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
        loss = triplet_loss(embeddings, labels, 0.5, mining)
        loss.backward()
        assert float(loss.detach()) == 0.0 and torch.all(embeddings.grad == 0)
    embeddings = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    triplet_loss(embeddings, torch.arange(4).repeat(2), 0.5, mining).backward()
    assert torch.isfinite(embeddings.grad).all() and embeddings.grad.abs().sum() > 0


def test_triplet_loss_keeps_float32_under_autocast_and_rejects_unknown_mining():
    z, labels = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), torch.arange(4).repeat(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = triplet_loss(z, labels)
    assert value.dtype == torch.float32 and float(value) == pytest.approx(float(triplet_loss(z, labels)))
    with pytest.raises(ValueError, match="mining"):
        triplet_loss(z, labels, mining="hard")


# --- masks ----------------------------------------------------------------------------


def _images(n=6, channels=1, height=8, width=8, seed=0):
    return torch.rand(n, channels, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape, area, side", [((8, 8), 0.25, (4, 4)), ((28, 28), 0.25, (14, 14)),
                                               ((16, 16), 0.5, (11, 11)), ((1, 10), 0.25, (1, 5))])
def test_center_mask_is_the_central_rectangle(shape, area, side):
    x = _images(n=3, height=shape[0], width=shape[1])
    mask = augment.center_mask(x, area=area)
    assert mask.shape == (3, 1, *shape) and mask.dtype == torch.bool
    expected = torch.zeros(shape, dtype=torch.bool)
    top, left = (shape[0] - side[0]) // 2, (shape[1] - side[1]) // 2
    expected[top:top + side[0], left:left + side[1]] = True
    assert torch.equal(mask, expected.expand(3, 1, *shape))


@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (1, 10), (1, 1)])
def test_random_block_masks_are_per_sample_seeded_and_cover_at_most_the_area(shape):
    x = _images(n=64, channels=3, height=shape[0], width=shape[1])
    mask = augment.random_block_mask(x, torch.Generator().manual_seed(0), area=0.25, n_blocks=4)
    assert mask.shape == (64, 1, *shape) and mask.dtype == torch.bool
    side = [max(1, round(s * math.sqrt(0.25 / 4))) for s in shape]
    counts = mask.flatten(1).sum(dim=1)
    assert torch.all(counts >= side[0] * side[1]) and torch.all(counts <= 4 * side[0] * side[1])
    same = augment.random_block_mask(x, torch.Generator().manual_seed(0), area=0.25, n_blocks=4)
    assert torch.equal(mask, same)
    if shape != (1, 1):
        assert len(torch.unique(mask.flatten(1), dim=0)) > 1  # positions differ between images
        other = augment.random_block_mask(x, torch.Generator().manual_seed(1), area=0.25, n_blocks=4)
        assert not torch.equal(mask, other)


def test_one_random_block_is_a_whole_square_at_uniform_places():
    x = _images(n=4000, height=8, width=8)
    mask = augment.random_block_mask(x, torch.Generator().manual_seed(0), area=0.25, n_blocks=1)
    assert torch.all(mask.flatten(1).sum(dim=1) == 16)  # one 4x4 block, never clipped
    rows, cols = mask[:, 0].any(dim=2), mask[:, 0].any(dim=1)  # (B, H), (B, W)
    assert torch.all(rows.sum(dim=1) == 4) and torch.all(cols.sum(dim=1) == 4)
    tops = rows.float().argmax(dim=1)  # 5 possible top rows, 0..4
    frequencies = torch.bincount(tops, minlength=5) / len(tops)
    assert torch.all((frequencies - 0.2).abs() < 0.03), frequencies


def test_masked_mse_is_the_mean_over_masked_pixels_only():
    generator = torch.Generator().manual_seed(0)
    target, reconstruction = torch.rand(2, 4, 3, 5, 5, generator=generator)
    hole = torch.rand(4, 1, 5, 5, generator=generator) < 0.3
    loss = masked_mse(reconstruction, target, hole.float())
    squares = [float(reconstruction[b, c, i, j] - target[b, c, i, j]) ** 2
               for b in range(4) for c in range(3) for i in range(5) for j in range(5) if hole[b, 0, i, j]]
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

SHAPES = {
    "digits_8x8": (np.random.default_rng(0).integers(0, 17, (40, 64)).astype(float), 64),
    "mnist_28x28": (np.random.default_rng(0).random((40, 28, 28)), 16 * 2 * 2),
    "colour_16x16": (np.random.default_rng(0).random((40, 16, 16, 3)), 16 * 2 * 2),
}


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("name", list(SHAPES))
def test_shapes(cls, name):
    X, n_features = SHAPES[name]
    features = cls(max_epochs=1, batch_size=16, device="cpu", random_state=0).fit_transform(X)
    assert features.shape == (40, n_features) and features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.parametrize(
    "featurizer",
    [ContextEncoderFeaturizer(mask="random_blocks", **FAST), ContextEncoderFeaturizer(mask="center", **FAST),
     ExemplarFeaturizer(**FAST)],
    ids=["random_blocks", "center", "exemplar"],
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
        (ExemplarFeaturizer, {"n_views": 1}),
        (ExemplarFeaturizer, {"mining": "hard"}),
        (ExemplarFeaturizer, {"margin": -0.1}),
        (ExemplarFeaturizer, {"crop_scale": (0.5, 0.2)}),
    ],
)
def test_bad_parameters_raise_value_errors_naming_them(cls, params):
    (name, _), = params.items()
    with pytest.raises(ValueError, match=name):
        cls(**params, **FAST).fit(load_digits().data[:32])


@pytest.mark.parametrize("cls", CLASSES)
def test_save_and_load_give_the_same_features(cls, tmp_path):
    X = load_digits().data[:64]
    featurizer = cls(**FAST).fit(X)
    featurizer.save(tmp_path / "model.pt")
    np.testing.assert_array_equal(load(tmp_path / "model.pt").transform(X), featurizer.transform(X))


# --- scikit-learn's checks ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@parametrize_with_checks([cls(**FAST) for cls in CLASSES])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --- each method learns -----------------------------------------------------------------


# Pretext on 1,000 unlabeled digits (10 epochs, default settings), probe on 300 labels,
# test on 797 others, one CPU thread. Gains over the same network's random-init features
# for seeds 0, 1, 2 when the margins were set:
#   context encoder +0.079, +0.103, +0.044 (loss 0.11 -> 0.056);
#   Exemplar +0.201, +0.206, +0.120 (loss 0.47 -> 0.42; median per-dimension std 0.39-0.42).
@pytest.mark.parametrize(
    "cls, margin, loss_drop",
    [(ContextEncoderFeaturizer, 0.02, 0.3), (ExemplarFeaturizer, 0.06, 0.05)],
    ids=["context_encoder", "exemplar"],
)
def test_features_beat_random_features_on_digits(cls, margin, loss_drop):
    X, y = load_digits(return_X_y=True)
    featurizer = cls(max_epochs=10, device="cpu", random_state=0).fit(X[:1000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])  # same init
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < (1 - loss_drop) * losses[0], losses
    spread = featurizer.transform(X[1000:]).std(axis=0)
    assert np.median(spread) > 0.1, spread  # no collapse to a constant embedding
    accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
    baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
    assert accuracy > baseline + margin, (accuracy, baseline)


def test_exemplar_views_are_labelled_by_source_image():
    featurizer = ExemplarFeaturizer(**FAST, n_views=3).fit(load_digits().data[:64])
    inputs, labels = featurizer.task_.views(_images(n=5), torch.Generator().manual_seed(0))
    assert inputs.shape == (15, 1, 8, 8)
    assert labels.tolist() == [0, 1, 2, 3, 4] * 3
    assert not torch.equal(inputs[:5], inputs[5:10])  # views differ
