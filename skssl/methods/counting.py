"""Counting: learn features that add up over the tiles of an image.

- [0] Noroozi, Pirsiavash & Favaro, "Representation Learning by Learning to Count",
  ICCV 2017, arXiv:1708.06734.
"""

from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval
from torch import nn

from .._panels import ViewPanel, mosaic
from ..base import BaseFeaturizer, stage_before_last
from ..losses import counting_loss
from ..registry import register_method
from ..task import PretextTask
from ._tiles import cut_tiles, resize_to_grid, tile_feature_size, tile_features, tile_grid

# How the whole image is shrunk to a tile's size, drawn per image, so that the
# artefacts of one filter cannot tell a downsampled image from a tile.
DOWNSAMPLING = (
    dict(mode="area"),
    dict(mode="bilinear", antialias=True, align_corners=False),
    dict(mode="bicubic", antialias=True, align_corners=False),
    dict(mode="nearest"),
)


class CountingTask(PretextTask):
    """The counts of the 2x2 tiles of an image must add up to the counts of the whole.

    "We introduce a novel method for representation learning that uses an artificial
    supervision signal based on counting visual primitives. This supervision signal is
    obtained from an equivariance relation" [0]: with ``D`` the downsampling by 2 and
    ``T_j`` the four quarter tiles, both of the same size, the counting vector ``phi``
    (backbone, then a ReLU MLP: counts are not negative; ``n_counts`` long, 1000 in
    [0], 32 here, which gave digits the most general features) is trained with
    ``|phi(D x) - sum_j phi(T_j x)|^2 + max(0, M - |phi(D y) - sum_j phi(T_j x)|^2)``,
    where ``y`` is another image (the next one in the shuffled batch) and the second,
    contrastive term rules out the trivial ``phi = 0``.
    """

    min_tile = 8  # pixels: 8x8 digits become 16x16, and their downsampled whole is 8x8 again

    def __init__(self, backbone, *, margin, n_counts=32, n_hidden=512):
        super().__init__()
        self.backbone = backbone
        self.margin = margin
        _, height, width = backbone.in_shape
        self.layout = tile_grid(height, width, grid=2, tile_fraction=(1, 1), min_tile=self.min_tile)
        n_features = tile_feature_size(backbone, self.layout, type(self).__name__)
        self.counter = nn.Sequential(
            nn.Linear(n_features, n_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(n_hidden, n_counts),
            nn.ReLU(inplace=True),
        )

    def views(self, batch, generator, targets=None):
        images = resize_to_grid(batch, self.layout)
        n = len(images)
        cells = torch.arange(4, device=images.device).expand(n, 4)
        tiles = cut_tiles(images, self.layout, cells, generator)  # (B, 4, C, h, w); tiles fill their cells
        shrunk = torch.stack([F.interpolate(images, size=self.layout.tile, **how) for how in DOWNSAMPLING])
        method = torch.randint(len(DOWNSAMPLING), (n,), generator=generator, device=images.device)
        whole = shrunk[method, torch.arange(n, device=images.device)]  # (B, C, h, w)
        return torch.cat([whole, tiles.flatten(0, 1)]), None  # (5B, C, h, w): wholes, then tiles

    def view_panels(self, batch, inputs, targets):
        n = len(batch)
        tiles = inputs[n:].unflatten(0, (n, 4))  # (B, 4, C, h, w)
        return [ViewPanel("whole, shrunk", inputs[:n]), ViewPanel("its 4 tiles", mosaic(tiles, (2, 2)))]

    def loss(self, inputs, targets):
        counts = self.counter(tile_features(self.backbone, inputs))  # (5B, D)
        n = len(inputs) // 5
        whole, tiles = counts[:n], counts[n:].view(n, 4, -1)  # (B, D), (B, 4, D)
        return counting_loss(whole, tiles, whole.roll(1, dims=0), margin=self.margin)


@register_method(
    "counting",
    task="the features of the four tiles add up to the whole image's",
    paper="Noroozi et al., ICCV 2017",
)
class CountingFeaturizer(BaseFeaturizer):
    """Counting features as a scikit-learn transformer.

    Every training image is shrunk to half its size and also cut into its four
    quarter tiles, which have that same size. The backbone and a small MLP map each
    to a non-negative "counting" vector (32 counts; 1000 in [1]_), trained so that the
    tiles' vectors add up to the whole image's, and differ from another image's by at
    least ``margin`` (in squared distance). ``transform`` applies the backbone to whole
    images; the stage before the last (``layer="auto"``) gives the features, as for
    RotNet: the last stage specialises in the counts (on MNIST and the digits its
    features scored 2-2.5 points lower, ``benchmarks/RESULTS.md``).

    Images whose side is below 16 pixels are resized (bilinear) up to 16 for the
    pretext task only, so that tiles are 8 pixels: 8x8 digits are then counted on
    8-pixel quarters of a 2x upsampled digit and on the digit shrunk back to 8x8, the
    size ``transform`` embeds. Larger images keep their size (28x28 MNIST: 14-pixel
    tiles). Rows that are ``1 x n`` signals become ``16 x n`` images the same way. The
    backbone must run on tiles of that size: a convolutional one always does, while
    ``"mlp"`` raises a ValueError in ``fit`` unless the tiles have the images' size
    (8x8 images).

    Parameters
    ----------
    margin : float, default=10.0
        ``M``, the squared distance the counts of two different images must at least
        keep, as in [1]_.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    JigsawFeaturizer : features from solving 3x3 jigsaw puzzles.
    RelativePositionFeaturizer : features from telling where a neighbouring patch lies.

    References
    ----------
    .. [1] Noroozi, Pirsiavash & Favaro, "Representation Learning by Learning to
       Count", ICCV 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.counting import CountingFeaturizer
    >>> X = load_digits().data[:100]
    >>> CountingFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 256)
    """

    margin: float = 10.0

    _parameter_constraints = {
        "margin": [Interval(Real, 0, None, closed="neither")],
    }

    _auto_layer = staticmethod(stage_before_last)

    def _build_task(self, backbone, context):
        return CountingTask(backbone, margin=self.margin)
