"""Context prediction: learn features by telling where one patch lies relative to another.

- [0] Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
  Prediction", ICCV 2015, arXiv:1505.05192.
"""

import torch

from .._panels import ViewPanel, captions, mosaic
from ..base import MIN_WORKING_SIDE, BaseFeaturizer
from ..registry import register_method
from ._tiles import TileClassifierTask

CENTRE = 4  # the middle cell of a 3x3 grid, numbered row by row
DIRECTIONS = ("up-left", "up", "up-right", "left", "right", "down-left", "down", "down-right")  # the classes


def neighbour_pairs(grid):
    """Every ``(first, second, class)`` the task shows, as a (P, 3) tensor of cells.

    On [0]'s 3x3 grid the first patch is the centre and the class names the second,
    0..7 row by row. A 2x2 grid has no centre: the first patch is any cell, the second
    any other, and the class names the direction from the first to the second with
    the same numbering (0 up-left, 1 up, 2 up-right, 3 left, 4 right, 5 down-left, ...).

    Examples
    --------
    >>> neighbour_pairs(3)[:, 2].tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    >>> neighbour_pairs(2)[:3].tolist()  # from the top-left cell: right, down, down-right
    [[0, 1, 4], [0, 2, 6], [0, 3, 7]]
    """
    pairs = []
    for first in [CENTRE] if grid == 3 else range(grid * grid):
        for second in range(grid * grid):
            rows, columns = second // grid - first // grid, second % grid - first % grid
            if second != first and abs(rows) <= 1 and abs(columns) <= 1:
                direction = 3 * (rows + 1) + columns + 1  # 0..8 in the 3x3 around the first
                pairs.append((first, second, direction - (direction > CENTRE)))
    return torch.tensor(pairs)


class RelativePositionTask(TileClassifierTask):
    """Show a patch and one of its neighbours in a grid of cells; classify where it lies.

    "we extract random pairs of patches from each image and train a convolutional
    neural net to predict the position of the second patch relative to the first" [0].
    Both patches go through the same backbone and an MLP on their concatenated
    features names the neighbour's direction (8 classes, see :func:`neighbour_pairs`).
    As in [0], the patches are separated by a gap (half a patch on average: patches
    span two thirds of their cell) and jittered within their cells, so that low-level
    cues such as lines continuing across patch borders give no shortcut.
    """

    tile_fraction = (2, 3)  # [0]: 96-pixel patches with a 48-pixel gap

    def __init__(self, backbone, grid=3, symmetries=False):
        super().__init__(backbone, grid=grid, n_tiles=2, n_classes=8, symmetries=symmetries)
        self.register_buffer("pairs", neighbour_pairs(grid), persistent=False)

    def arrange(self, n, generator):
        index = torch.randint(len(self.pairs), (n,), generator=generator, device=generator.device)
        chosen = self.pairs[index]
        return chosen[:, :2], chosen[:, 2]  # (B, 2) cells, (B,) classes

    def view_panels(self, batch, inputs, targets):
        tiles = inputs.unflatten(0, (len(batch), 2))  # (B, 2, C, h, w): the first patch, then its neighbour
        around_first = torch.stack([torch.full_like(targets, CENTRE), targets + (targets >= CENTRE)], dim=1)
        return [
            ViewPanel("patch pair", mosaic(tiles, (1, 2)), captions("class {}", targets)),
            ViewPanel(
                "second relative to first",
                mosaic(tiles, (3, 3), cells=around_first),
                tuple(DIRECTIONS[label] for label in targets.tolist()),
            ),
        ]


@register_method(
    "relative_position",
    task="tell where a neighbouring patch lies relative to the centre one",
    paper="Doersch et al., ICCV 2015",
)
class RelativePositionFeaturizer(BaseFeaturizer):
    """Context-prediction (relative patch position) features as a scikit-learn transformer.

    From each training image the centre patch of a 3x3 grid and one of its eight
    neighbours are cut, each at a random place in its cell (a random gap between them),
    and each is normalised to zero mean and unit deviation on its own (the jigsaw
    paper's guard against low-level cues). The backbone encodes both patches (shared
    weights) and an MLP on their concatenated features must say where the second lies
    relative to the first. ``transform`` applies the backbone to whole images.

    Images whose longer side is under 16 pixels are too small for a 3x3 grid, whose
    patches would hold 2-3 of their pixels. They are enlarged (bilinear) by the smallest
    integer factor that reaches 16, in ``fit`` and ``transform`` alike, and cut into a
    2x2 grid: the first patch is any of its cells, the second any other, and the task
    names the direction between them (still 8 classes). 8x8 digits work at 16x16, with
    7-pixel patches in the 11-pixel cells of their 22x22 version, and their features are
    read at 16x16. Such images are also flipped and turned at random before they are cut
    (one of the square's 8 symmetries): in a small centred digit each quarter's strokes
    lean towards the centre, so a patch alone would tell where it lies. Larger images
    get the 3x3 grid of [1]_; a side below 33 pixels is resized up to 33 for the pretext
    task only, so that patches are 7 pixels (11-pixel cells): 28x28 MNIST becomes 33x33.
    Rows that are ``1 x n`` signals are stretched across the grid the same way. The
    backbone must be convolutional (``"mlp"`` raises a ValueError in ``fit``).

    Parameters
    ----------
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    JigsawFeaturizer : features from solving 3x3 jigsaw puzzles.
    CountingFeaturizer : features that add up over the tiles of an image.

    References
    ----------
    .. [1] Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by
       Context Prediction", ICCV 2015.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.relative_position import RelativePositionFeaturizer
    >>> X = load_digits().data[:100]
    >>> RelativePositionFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    _min_working_side = MIN_WORKING_SIDE

    def _build_task(self, backbone, context):
        small = self._is_enlarged()
        return RelativePositionTask(backbone, grid=2 if small else 3, symmetries=small)
