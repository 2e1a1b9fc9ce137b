"""The tiles of jigsaw, relative position and counting (``skssl.methods._tiles``): tiles
against a slow per-image reference, each method's views cut from them, per-tile
normalisation, the grids and sizes each method works at, and the backbones they take."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from skssl.datasets import make_shapes
from skssl.methods._tiles import TileGrid, cut_tiles, tile_features, tile_grid
from skssl.methods.counting import CountingFeaturizer
from skssl.methods.jigsaw import JigsawFeaturizer
from skssl.methods.relative_position import RelativePositionFeaturizer

from _testing import FAST

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
            out[b, i] = images[b, :, top : top + layout.tile[0], left : left + layout.tile[1]]
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
        for first in range(4)
        for second in range(4)
        if first != second
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
        (X_DIGITS[:32], 512),  # 8x8 grayscale, flat rows
        (np.random.default_rng(0).random((32, 28, 28)), 512),  # MNIST-sized
        (_colour_shapes(32), 512),  # colour, (n, H, W, C)
    ],
    ids=["digits", "28x28", "colour"],
)
def test_fit_transform_shapes(cls, X, n_features):
    # the last stage of every method (counting's layer="auto" reads the one before it)
    featurizer = cls(max_epochs=1, batch_size=16, layer="conv3", device="cpu", random_state=0).fit(X)
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
