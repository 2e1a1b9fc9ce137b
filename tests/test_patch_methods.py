"""Jigsaw, relative position and counting: tiles against a slow per-image reference,
the permutation set, the counting loss against a slow reference, scikit-learn's
checks, input sizes, and evidence that each learns."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from skssl import load
from skssl.backbones import pool
from skssl.datasets import make_shapes
from skssl.evaluation import linear_probe
from skssl.losses import counting_loss
from skssl.methods._tiles import TileGrid, cut_tiles, tile_features, tile_grid
from skssl.methods.counting import DOWNSAMPLING, CountingFeaturizer
from skssl.methods.jigsaw import JigsawFeaturizer, maximal_hamming_permutations
from skssl.methods.relative_position import RelativePositionFeaturizer

FAST = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
CLASSES = [JigsawFeaturizer, RelativePositionFeaturizer, CountingFeaturizer]
X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)


def _untrained(cls, X=X_DIGITS[:64], **kwargs):
    return cls(**{**FAST, "max_epochs": 0, **kwargs}).fit(X)


def _unit_batch(n=5):
    return torch.as_tensor(X_DIGITS[:n], dtype=torch.float32).view(n, 1, 8, 8) / 16.0


# --- tiles against a slow per-image reference -------------------------------------------


def reference_tiles(images, layout, cells, generator):
    """One Python crop per image and tile, replaying cut_tiles's draws (the row jitter
    of every tile, then the column jitter)."""
    n, k = cells.shape
    rows = torch.randint(layout.cell[0] - layout.tile[0] + 1, (n, k), generator=generator)
    columns = torch.randint(layout.cell[1] - layout.tile[1] + 1, (n, k), generator=generator)
    out = torch.empty(n, k, images.shape[1], *layout.tile)
    for b in range(n):
        for i in range(k):
            row, column = divmod(int(cells[b, i]), layout.grid)
            top = layout.origin[0] + row * layout.cell[0] + int(rows[b, i])
            left = layout.origin[1] + column * layout.cell[1] + int(columns[b, i])
            out[b, i] = images[b, :, top:top + layout.tile[0], left:left + layout.tile[1]]
    return out


def normalized(tiles):
    """Each tile (..., C, h, w) less its mean over its deviation floored at 0.1, one at a time."""
    out = torch.empty_like(tiles)
    for index in itertools.product(*map(range, tiles.shape[:-3])):
        tile = tiles[index]
        out[index] = (tile - tile.mean()) / (tile.var(unbiased=False) + 0.01).sqrt()
    return out


def replayed_symmetries(batch, generator):
    """Replay random_symmetry's three coins per image, one image at a time."""
    coins = torch.rand(3, len(batch), generator=generator) < 0.5
    out = []
    for image, (transpose, mirror, upside_down) in zip(batch, coins.T.tolist()):
        image = image.transpose(1, 2) if transpose else image
        image = image.flip(2) if mirror else image
        out.append(image.flip(1) if upside_down else image)
    return torch.stack(out)


@pytest.mark.parametrize("shape", [(3, 20, 20), (1, 28, 31), (2, 1, 40)])
def test_cut_tiles_matches_per_image_crops(shape):
    images = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))
    layout = tile_grid(*shape[1:], grid=3, tile_fraction=(4, 5), min_tile=3)
    assert layout.size == (max(shape[1], 12), shape[2])  # a 1-pixel axis needs upsampling first
    images = F.interpolate(images, size=layout.size, mode="bilinear", align_corners=False)
    cells = torch.randint(9, (4, 5), generator=torch.Generator().manual_seed(1))
    tiles = cut_tiles(images, layout, cells, torch.Generator().manual_seed(2))
    expected = reference_tiles(images, layout, cells, torch.Generator().manual_seed(2))
    torch.testing.assert_close(tiles, expected, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 28, 28), (2, 1, 40)])
def test_tiles_of_small_images_are_cut_as_from_the_enlarged_image(shape):
    images = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))
    layout = tile_grid(*shape[1:], grid=3, tile_fraction=(2, 3), min_tile=7)
    assert layout.size != shape[1:]
    cells = torch.randint(9, (4, 2), generator=torch.Generator().manual_seed(1))
    tiles = cut_tiles(images, layout, cells, torch.Generator().manual_seed(2))
    enlarged = F.interpolate(images, size=layout.size, mode="bilinear", align_corners=False)
    expected = cut_tiles(enlarged, layout, cells, torch.Generator().manual_seed(2))
    torch.testing.assert_close(tiles, expected, rtol=0, atol=1e-5)


def test_tiles_stay_in_their_cells_and_the_jitter_spans_the_gap():
    layout = tile_grid(28, 28, grid=3, tile_fraction=(4, 5), min_tile=7)
    assert layout == TileGrid(grid=3, size=(28, 28), origin=(0, 0), cell=(9, 9), tile=(7, 7))
    # each pixel holds its own (row, column) so a tile tells where it was cut
    rows, columns = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    images = torch.stack([rows, columns]).expand(2000, 2, 28, 28)
    cells = torch.arange(9).expand(2000, 9)
    tiles = cut_tiles(images, layout, cells, torch.Generator().manual_seed(0))  # (B, 9, 2, 7, 7)
    top, left = tiles[:, :, 0, 0, 0], tiles[:, :, 1, 0, 0]
    offset_top, offset_left = top - (cells // 3) * 9, left - (cells % 3) * 9
    assert offset_top.min() == 0 and offset_top.max() == 2  # the 2 spare pixels of a cell
    assert offset_left.min() == 0 and offset_left.max() == 2
    assert not torch.equal(offset_top[:, 0], offset_top[:, 1])  # each tile jitters on its own


@pytest.mark.parametrize("image_side, side, grid", [(8, 18, 2), (28, 28, 3)], ids=["digits", "28x28"])
def test_jigsaw_views_are_the_chosen_permutation_of_reference_tiles(image_side, side, grid):
    X = X_DIGITS[:64] if image_side == 8 else np.random.default_rng(0).random((16, 28, 28))
    task = _untrained(JigsawFeaturizer, X, n_permutations=10).task_
    assert task.layout.size == (side, side) and task.layout.grid == grid
    assert task.permutations.shape == (10, grid * grid)
    assert task.symmetries == (grid == 2)  # small images are flipped and turned at random
    batch = torch.rand(5, 1, image_side, image_side, generator=torch.Generator().manual_seed(0))
    inputs, targets = task.views(batch, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    turned = replayed_symmetries(batch, replay) if grid == 2 else batch
    expected_targets = torch.randint(10, (5,), generator=replay)
    upsampled = F.interpolate(turned, size=(side, side), mode="bilinear", align_corners=False)
    expected = reference_tiles(upsampled, task.layout, task.permutations[expected_targets], replay)
    torch.testing.assert_close(targets, expected_targets, rtol=0, atol=0)
    torch.testing.assert_close(inputs.view(5, grid * grid, 1, 7, 7), expected)


def test_relative_position_views_are_the_centre_and_the_named_neighbour():
    task = _untrained(RelativePositionFeaturizer, np.random.default_rng(0).random((16, 28, 28))).task_
    assert task.layout.grid == 3
    batch = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    inputs, targets = task.views(batch, torch.Generator().manual_seed(4))
    replay = torch.Generator().manual_seed(4)
    expected_targets = torch.randint(8, (5,), generator=replay)
    neighbours = [[0, 1, 2, 3, 5, 6, 7, 8][t] for t in expected_targets.tolist()]
    cells = torch.tensor([[4, cell] for cell in neighbours])
    upsampled = F.interpolate(batch, size=(33, 33), mode="bilinear", align_corners=False)
    expected = reference_tiles(upsampled, task.layout, cells, replay)
    torch.testing.assert_close(targets, expected_targets, rtol=0, atol=0)
    torch.testing.assert_close(inputs.view(5, 2, 1, 7, 7), expected)


@pytest.mark.parametrize("cls", [JigsawFeaturizer, RelativePositionFeaturizer])
def test_each_tile_is_normalised_on_its_own_before_it_is_encoded(cls):
    task = _untrained(cls).task_.eval()
    inputs, _ = task.views(_unit_batch(8), torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = tile_features(task.backbone, normalized(inputs.view(8, -1, *inputs.shape[1:])).flatten(0, 1))
        torch.testing.assert_close(task.encode(inputs), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(task.encode(inputs + 0.5), expected, rtol=1e-4, atol=1e-4)  # brightness-free
    assert task.encode(torch.zeros(2, 1, 7, 7)).isfinite().all()  # blank tiles stay finite


def test_relative_position_on_small_images_names_the_direction_between_two_of_four_cells():
    task = _untrained(RelativePositionFeaturizer).task_  # 8x8 digits: a 2x2 grid
    assert task.layout.grid == 2 and task.layout.size == (22, 22)
    directions = {(-1, -1): 0, (-1, 0): 1, (-1, 1): 2, (0, -1): 3, (0, 1): 4, (1, -1): 5, (1, 0): 6, (1, 1): 7}
    expected_pairs = sorted(
        (first, second, directions[(second // 2 - first // 2, second % 2 - first % 2)])
        for first in range(4) for second in range(4) if first != second
    )
    assert sorted(map(tuple, task.pairs.tolist())) == expected_pairs  # all 12, each once
    batch = _unit_batch(200)
    inputs, targets = task.views(batch, torch.Generator().manual_seed(4))
    replay = torch.Generator().manual_seed(4)
    turned = replayed_symmetries(batch, replay)
    chosen = task.pairs[torch.randint(12, (200,), generator=replay)]
    upsampled = F.interpolate(turned, size=(22, 22), mode="bilinear", align_corners=False)
    expected = reference_tiles(upsampled, task.layout, chosen[:, :2], replay)
    torch.testing.assert_close(targets, chosen[:, 2], rtol=0, atol=0)
    torch.testing.assert_close(inputs.view(200, 2, 1, 7, 7), expected, rtol=0, atol=1e-5)
    assert set(targets.tolist()) == set(range(8))


def test_counting_views_are_the_quarters_and_the_randomly_shrunk_whole():
    task = _untrained(CountingFeaturizer).task_
    batch = _unit_batch()
    inputs, _ = task.views(batch, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    torch.randint(1, (5, 4), generator=replay), torch.randint(1, (5, 4), generator=replay)  # no jitter
    methods = torch.randint(len(DOWNSAMPLING), (5,), generator=replay)
    upsampled = F.interpolate(batch, size=(16, 16), mode="bilinear", align_corners=False)
    whole, tiles = inputs[:5], inputs[5:].view(5, 4, 1, 8, 8)
    for b in range(5):
        for j, (top, left) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8)]):
            torch.testing.assert_close(tiles[b, j], upsampled[b, :, top:top + 8, left:left + 8])
        shrunk = F.interpolate(upsampled[b:b + 1], size=(8, 8), **DOWNSAMPLING[int(methods[b])])
        torch.testing.assert_close(whole[b], shrunk[0])
    assert len({int(m) for m in methods}) > 1


# --- the permutation set -------------------------------------------------------------


def _distances(permutations):
    return [int((a != b).sum()) for a, b in itertools.combinations(permutations, 2)]


@pytest.mark.parametrize("n, minimum", [(10, 8), (64, 7), (100, 6)])
@pytest.mark.parametrize("first", [0, 12345, 362879])
def test_permutations_are_far_apart(n, minimum, first):
    permutations = maximal_hamming_permutations(n, first)
    assert permutations.shape == (n, 9)
    assert tuple(permutations[0]) == next(itertools.islice(itertools.permutations(range(9)), first, None))
    assert all(sorted(p) == list(range(9)) for p in permutations.tolist())
    distances = _distances(permutations)
    assert min(distances) == minimum  # the greedy selection of [0] alone leaves pairs at 2
    assert np.mean(distances) >= 8.07  # [0]'s average for 100 permutations: 8.08


def test_a_2x2_grid_has_all_24_permutations_at_most():
    permutations = maximal_hamming_permutations(24, 5, n_tiles=4)
    assert sorted(map(tuple, permutations.tolist())) == list(itertools.permutations(range(4)))
    assert min(_distances(maximal_hamming_permutations(4, 0, n_tiles=4))) == 4  # derangements of each other
    with pytest.raises(ValueError, match="only 24 orders"):
        maximal_hamming_permutations(25, 0, n_tiles=4)
    task = _untrained(JigsawFeaturizer).task_  # 8x8 digits, n_permutations=100
    assert task.permutations.shape == (24, 4) and task.head[-1].out_features == 24


def test_permutation_set_is_reproducible_from_the_seed_and_travels_with_the_model(tmp_path):
    X = np.random.default_rng(0).random((16, 28, 28))  # a 3x3 grid
    first = _untrained(JigsawFeaturizer, X, n_permutations=24)
    again = _untrained(JigsawFeaturizer, X, n_permutations=24)
    other = _untrained(JigsawFeaturizer, X, n_permutations=24, random_state=1)
    torch.testing.assert_close(first.task_.permutations, again.task_.permutations, rtol=0, atol=0)
    assert not torch.equal(first.task_.permutations, other.task_.permutations)
    assert min(_distances(first.task_.permutations.numpy())) == 7
    assert "permutations" in dict(first.task_.named_buffers())
    first.save(tmp_path / "jigsaw.pt")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(99)  # loading draws another set, then restores the saved one
        restored = load(tmp_path / "jigsaw.pt")
    torch.testing.assert_close(restored.task_.permutations, first.task_.permutations, rtol=0, atol=0)
    np.testing.assert_array_equal(restored.transform(X[:8]), first.transform(X[:8]))


# --- the counting loss against a slow reference ----------------------------------------


def counting_loss_reference(whole, tiles, other, margin):
    """Eq. (5) of Noroozi et al. 2017, one image and one count at a time."""
    total = 0.0
    for b in range(len(whole)):
        summed = [sum(float(tile[d]) for tile in tiles[b]) for d in range(whole.shape[1])]
        agree = sum((float(whole[b, d]) - summed[d]) ** 2 for d in range(len(summed)))
        apart = sum((float(other[b, d]) - summed[d]) ** 2 for d in range(len(summed)))
        total += agree + max(0.0, margin - apart)
    return total / len(whole)


@pytest.mark.parametrize("margin", [0.5, 3.0, 10.0])  # apart: 0.7 to 5.6, so the hinge acts on 0, 3, 6 rows
def test_counting_loss_matches_reference(margin):
    g = torch.Generator().manual_seed(0)
    whole, tiles = torch.rand(6, 5, generator=g), torch.rand(6, 4, 5, generator=g) / 4
    other = 2 * torch.rand(6, 5, generator=g)
    expected = counting_loss_reference(whole, tiles, other, margin)
    assert float(counting_loss(whole, tiles, other, margin)) == pytest.approx(expected, rel=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = counting_loss(whole, tiles, other, margin)
    assert value.dtype == torch.float32


def test_counting_task_contrasts_each_image_with_the_next():
    task = _untrained(CountingFeaturizer).task_  # eval mode: batch norm uses its running stats
    inputs, targets = task.views(_unit_batch(6), torch.Generator().manual_seed(0))
    with torch.no_grad():
        counts = task.counter(pool(task.backbone(inputs), "avg"))
        expected = counting_loss_reference(counts[:6], counts[6:].view(6, 4, -1), counts[:6].roll(1, 0), 10.0)
        assert float(task.loss(inputs, targets)) == pytest.approx(expected, rel=1e-4)


# --- input sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, side, tile",
    [(JigsawFeaturizer, 18, 7), (RelativePositionFeaturizer, 22, 7), (CountingFeaturizer, 16, 8)],
)
def test_small_images_are_upsampled_to_the_documented_size(cls, side, tile):
    task = _untrained(cls).task_  # 8x8 digits, enlarged to 16x16 (counting: 2x for the pretext)
    assert task.layout.size == (side, side) and task.layout.tile == (tile, tile)
    big = np.random.default_rng(0).random((16, 40, 40))
    assert _untrained(cls, big).task_.layout.size == (40, 40)  # never shrunk


@pytest.mark.parametrize("cls, side", [(JigsawFeaturizer, 27), (RelativePositionFeaturizer, 33)])
def test_images_of_16_pixels_or_more_get_the_papers_3x3_grid(cls, side):
    task = _untrained(cls, np.random.default_rng(0).random((16, 20, 20))).task_
    assert task.backbone.in_shape == (1, 20, 20)  # not enlarged for transform
    assert task.layout.grid == 3 and task.layout.size == (side, side)  # resized for the pretext only


def _colour_shapes(n):
    images, _ = make_shapes(n, image_size=16, random_state=0)
    return np.repeat(images[..., None], 3, axis=-1)  # (n, 16, 16, 3)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "X, n_features",
    [
        (X_DIGITS[:32], 64),  # 8x8 grayscale, flat rows
        (np.random.default_rng(0).random((32, 28, 28)), 64),  # MNIST-sized
        (_colour_shapes(32), 64),  # colour, (n, H, W, C)
    ],
    ids=["digits", "28x28", "colour"],
)
def test_fit_transform_shapes(cls, X, n_features):
    featurizer = cls(max_epochs=1, batch_size=16, device="cpu", random_state=0).fit(X)
    features = featurizer.transform(X)
    assert features.shape == (len(X), n_features) and features.dtype == np.float32
    assert np.isfinite(features).all() and np.isfinite(featurizer.history_[0]["loss"])


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.parametrize("cls", CLASSES)
def test_one_row_signals_are_stretched_to_images(cls):
    X = np.random.default_rng(0).random((20, 10))  # 1 x 10 "images"
    featurizer = cls(**FAST).fit(X)
    assert featurizer.task_.layout.size[1] > 10 and featurizer.task_.layout.size[0] > 1
    assert featurizer.transform(X).shape[0] == 20


@pytest.mark.parametrize("cls", CLASSES)
def test_backbones_that_cannot_take_tiles_are_refused(cls):
    X = np.random.default_rng(0).random((16, 28, 28))
    with pytest.raises(ValueError, match="convolutional backbone"):
        cls(**{**FAST, "backbone": "mlp"}).fit(X)


def test_counting_takes_an_mlp_where_tiles_have_the_image_size():
    # 8x8 digits are counted on 8x8 quarters of their 2x upsampled version
    featurizer = CountingFeaturizer(**{**FAST, "backbone": "mlp"}).fit(X_DIGITS[:32])
    assert featurizer.transform(X_DIGITS[:32]).shape == (32, 256)


# --- scikit-learn's checks ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.filterwarnings("ignore:batch_size=.* is larger than")
@parametrize_with_checks([cls(**FAST) for cls in CLASSES])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --- each method learns -------------------------------------------------------------

# Pretext on 1,000 unlabeled digits (10 epochs of batches of 64), probe on 300 labels,
# test on 797 others, as in test_modern_methods.py. Counting's conv3 features gained
# +0.078, +0.069, +0.049 over the same network's random-init features for seeds 0, 1, 2
# (1 thread); median per-dimension std 0.82-0.96 (random init: 0.013-0.019); last-epoch
# loss over first 0.34-0.48.
def test_counting_features_beat_random_features_on_digits():
    X, y = X_DIGITS, Y_DIGITS
    featurizer = CountingFeaturizer(max_epochs=10, batch_size=64, device="cpu", random_state=0).fit(X[:1000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])  # same init
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < 0.7 * losses[0], losses
    spread = featurizer.transform(X[1000:]).std(axis=0)
    assert np.median(spread) > 0.1, spread  # no collapse to a constant embedding
    accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
    baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
    assert accuracy > baseline + 0.025, (accuracy, baseline)


def _pretext_accuracy(task, X):
    """How often the trained head names the arrangement of tiles of unseen digits."""
    batch = torch.as_tensor(X, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    inputs, targets = task.views(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = task.head(task.encode(inputs).view(len(targets), -1))
    return float((logits.argmax(dim=1) == targets).float().mean())


# Each network learns its task on digits (their features' margin over random ones is
# asserted over seeds in tests/test_learning.py). Seeds 0, 1, 2 when the thresholds were
# set: jigsaw named the permutation (of 24, chance 0.042) of 0.556, 0.580, 0.565 of
# unseen digits' puzzles, randomly flipped and turned, its last-epoch loss 0.36-0.39 of
# its first; relative position named the direction (of 8, chance 0.125) of 0.488,
# 0.481, 0.499, its loss ratio 0.64-0.66.
@pytest.mark.parametrize(
    "cls, loss_ratio, floor",
    [(JigsawFeaturizer, 0.5, 0.45), (RelativePositionFeaturizer, 0.75, 0.35)],
    ids=["jigsaw", "relative_position"],
)
def test_patch_tasks_are_learned_on_unseen_digits(cls, loss_ratio, floor):
    featurizer = cls(max_epochs=10, batch_size=64, device="cpu", random_state=0).fit(X_DIGITS[:1000])
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < loss_ratio * losses[0], losses
    assert _pretext_accuracy(featurizer.task_, X_DIGITS[1000:]) > floor
