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

from ..base import BaseFeaturizer, _fill_docstring
from ._tiles import TileClassifierTask

N_TILES = 9  # a 3x3 grid
MAX_PERMUTATIONS = 1000  # the largest set of [0]; the greedy search grows with it


@functools.lru_cache(maxsize=1)
def _all_permutations():
    """All 9! orders of the 9 tiles, lexicographic: (362880, 9) uint8."""
    flat = itertools.chain.from_iterable(itertools.permutations(range(N_TILES)))
    return np.fromiter(flat, dtype=np.uint8, count=N_TILES * math.factorial(N_TILES)).reshape(-1, N_TILES)


@functools.lru_cache(maxsize=8)
def maximal_hamming_permutations(n_permutations, first):
    """``n_permutations`` orders of 9 tiles, far apart in Hamming distance, greedily.

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
    ndarray of shape (n_permutations, 9), dtype uint8
        Row ``k`` lists which cell's tile goes to each position of puzzle ``k``.

    Examples
    --------
    >>> permutations = maximal_hamming_permutations(10, first=0)
    >>> permutations[0].tolist()  # the identity is number 0
    [0, 1, 2, 3, 4, 5, 6, 7, 8]
    >>> int(min((a != b).sum() for a, b in itertools.combinations(permutations, 2)))
    8
    """
    candidates = _all_permutations()
    columns = np.ascontiguousarray(candidates.T)  # (9, 9!): a contiguous row per position
    chosen = [first]
    nearest = np.full(len(candidates), N_TILES, dtype=np.int64)  # distance to the closest chosen
    total = np.zeros(len(candidates), dtype=np.int64)  # summed distance to the chosen
    for _ in range(n_permutations - 1):
        last = candidates[chosen[-1]]
        agree = sum((columns[i] == last[i]).astype(np.int64) for i in range(N_TILES))
        distance = N_TILES - agree  # (9!,) Hamming distance to the newest pick
        np.minimum(nearest, distance, out=nearest)
        total += distance
        score = nearest * (N_TILES * n_permutations + 1) + total  # nearest first, then total
        chosen.append(int(np.argmax(score)))  # chosen ones score <= total: never picked again
    permutations = candidates[chosen]
    permutations.flags.writeable = False  # cached: shared by every caller
    return permutations


class JigsawTask(TileClassifierTask):
    """Shuffle a 3x3 grid of tiles by one of a fixed set of permutations; classify which.

    "The CFN takes image tiles as input and explicitly limits the receptive field (or
    context) of its early processing units to one tile at a time" [0]; the network
    must tell which of a fixed set of permutations, far apart in Hamming distance,
    shuffled the tiles. Each tile is cut at a random place in its cell, so that edges
    and lines continuing across them give no shortcut. The set's first permutation is
    drawn from torch's global RNG, which the fit seeds from ``random_state``; the set
    is kept in the buffer ``permutations``.
    """

    tile_fraction = (4, 5)  # [0]: 64-pixel tiles in 75-pixel cells

    def __init__(self, backbone, n_permutations):
        super().__init__(backbone, n_tiles=N_TILES, n_classes=n_permutations)
        first = int(torch.randint(math.factorial(N_TILES), ()))  # uniform, as in [0]
        permutations = maximal_hamming_permutations(n_permutations, first)
        self.register_buffer("permutations", torch.from_numpy(permutations.astype(np.int64)))

    def arrange(self, n, generator):
        targets = torch.randint(len(self.permutations), (n,), generator=generator, device=generator.device)
        return self.permutations[targets], targets  # (B, 9): position i shows cell permutation[i]


@_fill_docstring
class JigsawFeaturizer(BaseFeaturizer):
    """Jigsaw-puzzle features (context-free network) as a scikit-learn transformer.

    Each training image is cut into a 3x3 grid of tiles, each taken at a random
    place in its cell (a random gap between tiles), and the tiles are shuffled by one
    of ``n_permutations`` permutations chosen far apart in Hamming distance. The
    backbone encodes every tile on its own (shared weights), and an MLP on the
    concatenated tile features must name the permutation. ``transform`` applies the
    backbone to whole images.

    Images whose side is below 27 pixels are resized (bilinear) up to 27 for the
    pretext task only, so that tiles are 7 pixels (9-pixel cells): 8x8 digits are
    then puzzled at about 3.4 times their size, while ``transform`` embeds them as
    they are. Larger images keep their size (28x28 MNIST: 7-pixel tiles in 9-pixel
    cells). Rows that are ``1 x n`` signals become ``27 x n`` images the same way. The
    backbone must be convolutional (``"mlp"`` raises a ValueError in ``fit``).

    Parameters
    ----------
    n_permutations : int, default=100
        Size of the permutation set, the number of classes of the pretext task
        (2 to 1000). [1]_ uses 1000; 100 suits small images and a CPU, and gives the
        permutations a minimum Hamming distance of 6 (the 1000 of [1]_: 2 in its
        selection, 5 in the tie-broken one used here).
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
    (100, 64)
    >>> featurizer.task_.permutations.shape
    torch.Size([100, 9])
    """

    _parameter_constraints = {
        **BaseFeaturizer._parameter_constraints,
        "n_permutations": [Interval(Integral, 2, MAX_PERMUTATIONS, closed="both")],
    }

    def __init__(
        self,
        *,
        n_permutations=100,
        backbone="small_cnn",
        backbone_kwargs=None,
        layer="auto",
        pool="auto",
        max_epochs=30,
        batch_size=64,
        learning_rate=1e-3,
        weight_decay=1e-4,
        device="auto",
        precision="auto",
        compile=False,
        image_shape=None,
        random_state=None,
        verbose=0,
        warm_start=False,
        tol=1e-4,
        n_iter_no_change=None,
        checkpoint_dir=None,
        checkpoint_every=1,
    ):
        self._store_parameters(locals())

    def _build_task(self, backbone, pool_how):
        return JigsawTask(backbone, self.n_permutations)
