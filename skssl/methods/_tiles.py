"""What the patch-based methods share: a grid of tiles cut from every image of a batch.

Jigsaw, relative position and counting all cut an image into a grid of cells, take a
tile from some cells, and feed each tile on its own to the backbone, which is fully
convolutional and so runs on tiles smaller than the images it was built for.

- [0] Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
  Prediction", ICCV 2015, arXiv:1505.05192.
- [1] Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles", ECCV 2016, arXiv:1603.09246.
- [2] Noroozi, Pirsiavash & Favaro, "Representation Learning by Learning to Count",
  ICCV 2017, arXiv:1708.06734.
"""

from abc import abstractmethod
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import _resize_matrix, random_symmetry, resize
from ..backbones import pool
from ..task import PretextTask


class TileGrid(NamedTuple):
    """Where the tiles of a ``grid x grid`` layout lie; every pair is ``(rows, columns)``.

    Images are first resized (bilinear) to ``size``; the cells of ``cell`` pixels start
    at ``origin`` (the grid is centred), and each tile of ``tile`` pixels lies anywhere
    inside its cell: the space it leaves is the random gap and jitter of [0] and [1].
    """

    grid: int
    size: tuple
    origin: tuple
    cell: tuple
    tile: tuple


def tile_grid(height, width, *, grid, tile_fraction, min_tile):
    """The :class:`TileGrid` for ``height x width`` images.

    A tile spans ``tile_fraction = (numerator, denominator)`` of its cell. An axis too
    short for tiles of ``min_tile`` pixels is resized up to the shortest one that gives
    them (the images are never shrunk).

    Examples
    --------
    >>> tile_grid(8, 8, grid=3, tile_fraction=(4, 5), min_tile=7)
    TileGrid(grid=3, size=(27, 27), origin=(0, 0), cell=(9, 9), tile=(7, 7))
    >>> tile_grid(1, 100, grid=3, tile_fraction=(4, 5), min_tile=7).tile
    (7, 26)
    """
    numerator, denominator = tile_fraction
    min_cell = -(-min_tile * denominator // numerator)  # ceil: the smallest cell with a big enough tile
    axes = []
    for side in (height, width):
        side = max(side, grid * min_cell)
        cell = side // grid
        axes.append((side, (side - grid * cell) // 2, cell, cell * numerator // denominator))
    size, origin, cell, tile = zip(*axes)
    return TileGrid(grid, size, origin, cell, tile)


def resize_to_grid(batch, layout):
    """``batch`` (B, C, H, W) resized (bilinear) to the grid's working size, if it differs."""
    return resize(batch, layout.size)


def draw_offsets(layout, cells, generator):
    """Top-left pixel ``(top, left)``, each (B, K), of a tile at a random place in each cell.

    ``cells`` (B, K) holds row-major cell indices in ``[0, grid**2)``. Draws the row
    jitter of every tile, then the column jitter, uniformly over the room the cell leaves.
    """
    device = cells.device
    jitter = [
        torch.randint(cell - tile + 1, cells.shape, generator=generator, device=device)
        for cell, tile in zip(layout.cell, layout.tile)
    ]
    row, column = cells // layout.grid, cells % layout.grid
    top = layout.origin[0] + row * layout.cell[0] + jitter[0]
    left = layout.origin[1] + column * layout.cell[1] + jitter[1]
    return top, left


def crop(images, top, left, size):
    """Tiles of ``size`` (h, w) at ``(top, left)`` (B, K) of every image: (B, K, C, h, w).

    One advanced-indexing gather for the whole batch, no loop over images or tiles.
    """
    n = images.shape[0]
    rows = top[..., None] + torch.arange(size[0], device=images.device)  # (B, K, h)
    columns = left[..., None] + torch.arange(size[1], device=images.device)  # (B, K, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    pixels = images.permute(0, 2, 3, 1)[batch, rows[..., :, None], columns[..., None, :]]  # (B, K, h, w, C)
    return pixels.permute(0, 1, 4, 2, 3)


def cut_tiles(images, layout, cells, generator):
    """One tile from each of ``cells`` (B, K) of every image, jittered: (B, K, C, h, w).

    Images smaller than the grid's working size are enlarged on the way: each tile is
    sampled straight from the image with the rows of the bilinear resize's matrices
    that it covers (two batched matrix products), which equals enlarging the whole
    image with :func:`resize_to_grid` and cropping, for a fraction of the pixels.
    """
    top, left = draw_offsets(layout, cells, generator)
    height, width = images.shape[-2:]
    if (height, width) == layout.size:
        return crop(images, top, left, layout.tile)
    (n, k), channels, (h, w) = cells.shape, images.shape[1], layout.tile
    steps = [torch.arange(side, device=images.device) for side in layout.tile]
    rows = _resize_matrix(height, layout.size[0], images.device)[top[..., None] + steps[0]]  # (B, K, h, H)
    columns = _resize_matrix(width, layout.size[1], images.device)[left[..., None] + steps[1]]  # (B, K, w, W)
    # two plain batched products, no broadcast copies: rows first, then columns
    by_row = rows.view(n, k * h, height) @ images.transpose(1, 2).reshape(n, height, channels * width)
    by_row = by_row.view(n * k, h * channels, width)  # (B*K, h*C, W)
    tiles = by_row @ columns.view(n * k, w, width).transpose(1, 2)  # (B*K, h*C, w)
    return tiles.view(n, k, h, channels, w).transpose(2, 3).to(images.dtype)  # (B, K, C, h, w)


def normalize_tiles(tiles, eps=0.1):
    """Each tile (..., C, h, w) less its own mean, over its own standard deviation.

    [1] normalises "the mean and the standard deviation of each patch independently"
    so that low-level statistics (how bright a tile is, how much ink it holds) do not
    tell where it belongs. One ``layer_norm`` over each tile's pixels (9x faster than
    separate reductions on CPU); the deviation is floored at ``eps`` (images are in
    [0, 1]: ``sqrt(var + eps**2)``), which keeps blank tiles blank rather than
    amplifying their noise.
    """
    return F.layer_norm(tiles, tiles.shape[-3:], eps=eps * eps)


def tile_feature_size(backbone, layout, method):
    """Length of a tile's backbone features; a ValueError when the backbone cannot take tiles."""
    training = backbone.training
    backbone.eval()
    probe = torch.zeros(1, backbone.in_shape[0], *layout.tile, device=backbone.mean.device)
    try:
        with torch.no_grad():
            return tile_features(backbone, probe).shape[1]
    except RuntimeError as exc:
        raise ValueError(
            f"{method} feeds the backbone tiles of {layout.tile[0]}x{layout.tile[1]} "
            f"pixels, which this backbone (built for images of (C, H, W)="
            f"{backbone.in_shape}) cannot take: {exc}. Use a convolutional backbone "
            f"such as 'small_cnn' or 'resnet18'."
        ) from exc
    finally:
        backbone.train(training)


def tile_features(backbone, tiles):
    """Features (N, F) of the last stage for tiles (N, C, h, w), averaged over space.

    Average pooling whatever the featurizer's ``pool_``: the tiles sit at random
    offsets in their cells, and averaging makes a tile's features the same wherever
    its content falls in the tile's own small feature map, so the head reads what a
    tile shows rather than how it was jittered; it also sizes the head by the
    backbone's width alone. ``transform`` still pools whole images with ``pool_``.
    """
    return pool(backbone(tiles), "avg")


class TileClassifierTask(PretextTask):
    """Cut tiles, encode each with the shared backbone, classify their concatenation.

    Subclasses implement :meth:`arrange`, which says which cells of the ``grid x
    grid`` layout each image shows and the class of that arrangement. Every tile is
    normalised on its own (:func:`normalize_tiles`) before it is encoded. With
    ``symmetries``, each image is first flipped and turned at random
    (:func:`skssl.augment.random_symmetry`): in a
    small image of a centred object, such as a digit, a tile's content alone tells
    where it lies (its strokes sit towards the centre), and the network would learn
    where a tile is rather than what it shows; in a randomly turned image it must
    relate the tiles to each other. The head is the two-layer
    MLP on the concatenated tile features of [0] and [1] (their ``fc7``, ``fc8``).
    """

    tile_fraction = (4, 5)
    min_tile = 7  # pixels: small_cnn then keeps a 2x2 map after its first max-pool

    def __init__(self, backbone, *, grid, n_tiles, n_classes, symmetries=False, n_hidden=512):
        super().__init__()
        self.backbone = backbone
        self.grid, self.symmetries = grid, symmetries
        _, height, width = backbone.in_shape
        self.layout = tile_grid(height, width, grid=self.grid, tile_fraction=self.tile_fraction, min_tile=self.min_tile)
        n_features = tile_feature_size(backbone, self.layout, type(self).__name__)
        self.head = nn.Sequential(  # no batch norm: a batch may hold a single image
            nn.Linear(n_tiles * n_features, n_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(n_hidden, n_classes),
        )

    @abstractmethod
    def arrange(self, n, generator):
        """``(cells, targets)``: the cells (n, n_tiles) each image shows, in order, and the class (n,)."""

    def views(self, batch, generator, targets=None):
        if self.symmetries:
            batch = random_symmetry(batch, generator)
        cells, targets = self.arrange(len(batch), generator)
        tiles = cut_tiles(batch, self.layout, cells, generator)  # (B, K, C, h, w), enlarged on the way
        return tiles.flatten(0, 1), targets  # (B*K, C, h, w)

    def encode(self, tiles):
        """Features (N, F) of tiles (N, C, h, w), each normalised on its own first.

        The normalisation is the network's first step rather than the data path's,
        like the backbone's own input scaling: it runs with the model on its device.
        """
        return tile_features(self.backbone, normalize_tiles(tiles))

    def loss(self, inputs, targets):
        features = self.encode(inputs)  # (B*K, F)
        logits = self.head(features.view(len(targets), -1))  # (B, K*F) -> (B, classes)
        return F.cross_entropy(logits, targets)
