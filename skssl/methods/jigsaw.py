"""Jigsaw puzzles: learn features by putting shuffled tiles of an image back in order.

- [0] Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving
  Jigsaw Puzzles", ECCV 2016, arXiv:1603.09246.
"""

import functools
import itertools
import math
from numbers import Integral

import numpy as np
import torch
from sklearn.utils._param_validation import Interval

from .._panels import ViewPanel, captions, mosaic
from ..base import MIN_WORKING_SIDE, BaseFeaturizer
from ..registry import register_method
from ._tiles import TileClassifierTask

MAX_PERMUTATIONS = 1000  # the largest set of [0]; the greedy search grows with it


@functools.lru_cache(maxsize=2)
def _all_permutations(n_tiles):
    """All ``n_tiles!`` orders of the tiles, lexicographic: (n_tiles!, n_tiles) uint8."""
    flat = itertools.chain.from_iterable(itertools.permutations(range(n_tiles)))
    return np.fromiter(flat, dtype=np.uint8, count=n_tiles * math.factorial(n_tiles)).reshape(-1, n_tiles)


@functools.lru_cache(maxsize=8)
def maximal_hamming_permutations(n_permutations, first, n_tiles=9):
    """``n_permutations`` orders of ``n_tiles`` tiles, far apart in Hamming distance, greedily.

    The greedy selection of [0] (its Algorithm 1): start from permutation number
    ``first`` (of the 9! in lexicographic order), then repeatedly add the candidate
    farthest from those chosen. [0] scores a candidate by its summed distance to them,
    which reaches a mean pairwise distance of 8.08 for 100 permutations but lets two
    of them differ in only 2 places. Here a candidate is scored by its distance to the
    *nearest* chosen permutation first and by the summed distance only to break ties:
    the mean distance stays that of [0] (8.08 for 100) and the minimum rises to 6 for
    100 permutations (7 for 64, 5 for 1000). Ties go to the first candidate, so the
    set depends only on ``n_permutations`` and ``first``.

    Returns
    -------
    ndarray of shape (n_permutations, n_tiles), dtype uint8
        Row ``k`` lists which cell's tile goes to each position of puzzle ``k``.

    Examples
    --------
    >>> permutations = maximal_hamming_permutations(10, first=0)
    >>> permutations[0].tolist()  # the identity is number 0
    [0, 1, 2, 3, 4, 5, 6, 7, 8]
    >>> int(min((a != b).sum() for a, b in itertools.combinations(permutations, 2)))
    8
    >>> len(maximal_hamming_permutations(24, first=0, n_tiles=4))  # all of a 2x2 grid's
    24
    """
    candidates = _all_permutations(n_tiles)
    if n_permutations > len(candidates):
        raise ValueError(f"{n_tiles} tiles have only {len(candidates)} orders, not {n_permutations}.")
    columns = np.ascontiguousarray(candidates.T)  # (n_tiles, n_tiles!): a contiguous row per position
    chosen = [first]
    nearest = np.full(len(candidates), n_tiles, dtype=np.int64)  # distance to the closest chosen
    total = np.zeros(len(candidates), dtype=np.int64)  # summed distance to the chosen
    for _ in range(n_permutations - 1):
        last = candidates[chosen[-1]]
        agree = sum((columns[i] == last[i]).astype(np.int64) for i in range(n_tiles))
        distance = n_tiles - agree  # (n_tiles!,) Hamming distance to the newest pick
        np.minimum(nearest, distance, out=nearest)
        total += distance
        score = nearest * (n_tiles * n_permutations + 1) + total  # nearest first, then total
        chosen.append(int(np.argmax(score)))  # chosen ones score <= total: never picked again
    permutations = candidates[chosen]
    permutations.flags.writeable = False  # cached: shared by every caller
    return permutations


class JigsawTask(TileClassifierTask):
    """Shuffle a grid of tiles by one of a fixed set of permutations; classify which.

    "The CFN takes image tiles as input and explicitly limits the receptive field (or
    context) of its early processing units to one tile at a time" [0]; the network
    must tell which of a fixed set of permutations, far apart in Hamming distance,
    shuffled the tiles. Each tile is cut at a random place in its cell, so that edges
    and lines continuing across them give no shortcut. The set's first permutation is
    drawn from torch's global RNG, which the fit seeds from ``random_state``; the set
    is kept in the buffer ``permutations``. [0]'s grid is 3x3; a 2x2 grid has only
    4! = 24 orders, so at most 24 permutations are used there.
    """

    tile_fraction = (4, 5)  # [0]: 64-pixel tiles in 75-pixel cells

    def __init__(self, backbone, n_permutations, grid=3, symmetries=False):
        n_tiles = grid * grid
        n_permutations = min(n_permutations, math.factorial(n_tiles))
        super().__init__(backbone, grid=grid, n_tiles=n_tiles, n_classes=n_permutations, symmetries=symmetries)
        first = int(torch.randint(math.factorial(n_tiles), ()))  # uniform, as in [0]
        permutations = maximal_hamming_permutations(n_permutations, first, n_tiles)
        self.register_buffer("permutations", torch.from_numpy(permutations.astype(np.int64)))

    def arrange(self, n, generator):
        targets = torch.randint(len(self.permutations), (n,), generator=generator, device=generator.device)
        return self.permutations[targets], targets  # (B, tiles): position i shows cell permutation[i]

    def view_panels(self, batch, inputs, targets):
        tiles = inputs.unflatten(0, (len(batch), -1))  # (B, tiles, C, h, w) in the order the network reads
        grid = (self.grid, self.grid)
        return [
            ViewPanel("shuffled tiles", mosaic(tiles, grid), captions("permutation {}", targets)),
            ViewPanel(  # the symmetries turn the image before it is cut
                "solved (turned)" if self.symmetries else "solved",
                mosaic(tiles, grid, cells=self.permutations[targets]),
            ),
        ]


@register_method(
    "jigsaw",
    task="put a shuffled 3x3 grid of tiles back in order (2x2 on images under 16 pixels)",
    paper="Noroozi & Favaro, ECCV 2016",
)
class JigsawFeaturizer(BaseFeaturizer):
    """Jigsaw-puzzle features (context-free network) as a scikit-learn transformer.

    Each training image is cut into a 3x3 grid of tiles, each taken at a random
    place in its cell (a random gap between tiles), and the tiles are shuffled by one
    of ``n_permutations`` permutations chosen far apart in Hamming distance. Each
    tile is normalised to zero mean and unit deviation on its own, as in [1]_. The
    backbone encodes every tile on its own (shared weights), and an MLP on the
    concatenated tile features must name the permutation. ``transform`` applies the
    backbone to whole images.

    Images whose longer side is under 16 pixels are too small for a 3x3 grid, whose
    tiles would hold 2-3 of their pixels. They are enlarged (bilinear) by the smallest
    integer factor that reaches 16, in ``fit`` and ``transform`` alike, and puzzled on a
    2x2 grid (at most its 24 permutations): 8x8 digits work at 16x16, with 7-pixel tiles
    in the 9-pixel cells of their 18x18 version, and their features are read at 16x16.
    Such images are also flipped and turned at random before they are cut (one of the
    square's 8 symmetries): in a small centred digit each quarter's strokes lean towards
    the centre, so a tile alone would tell where it belongs, and the network would learn
    where tiles are rather than what they show. Larger images get the 3x3 grid of [1]_;
    a side below 27 pixels is resized up to 27 for the pretext task only, so that tiles
    are 7 pixels (9-pixel cells), and 28x28 MNIST keeps its size (7-pixel tiles in
    9-pixel cells). Rows that are ``1 x n`` signals are stretched across the grid the
    same way. The backbone must be convolutional (``"mlp"`` raises a ValueError in
    ``fit``).

    Parameters
    ----------
    n_permutations : int, default=100
        Size of the permutation set, the number of classes of the pretext task
        (2 to 1000). [1]_ uses 1000; 100 suits small images and a CPU, and gives the
        permutations a minimum Hamming distance of 6 (the 1000 of [1]_: 2 in its
        selection, 5 in the tie-broken one used here). On the 2x2 grid of small
        images at most 24 are used.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    RelativePositionFeaturizer : features from telling where a neighbouring patch lies.
    CountingFeaturizer : features that add up over the tiles of an image.
    RotNetFeaturizer : features from predicting rotations.

    References
    ----------
    .. [1] Noroozi & Favaro, "Unsupervised Learning of Visual Representations by
       Solving Jigsaw Puzzles", ECCV 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.jigsaw import JigsawFeaturizer
    >>> X = load_digits().data[:100]
    >>> featurizer = JigsawFeaturizer(max_epochs=1, random_state=0).fit(X)
    >>> featurizer.transform(X).shape
    (100, 512)
    >>> featurizer.task_.permutations.shape  # the 24 orders of a 2x2 grid
    torch.Size([24, 4])
    """

    n_permutations: int = 100

    _parameter_constraints = {
        "n_permutations": [Interval(Integral, 2, MAX_PERMUTATIONS, closed="both")],
    }

    _min_working_side = MIN_WORKING_SIDE

    def _build_task(self, backbone, context):
        small = self._is_enlarged()
        return JigsawTask(backbone, self.n_permutations, grid=2 if small else 3, symmetries=small)
