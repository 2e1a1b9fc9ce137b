"""Context prediction: learn features by telling where one patch lies relative to another.

- [0] Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
  Prediction", ICCV 2015, arXiv:1505.05192.
"""

import torch

from ..base import BaseFeaturizer, _fill_docstring
from ._tiles import TileClassifierTask

CENTRE = 4  # the middle cell of a 3x3 grid, numbered row by row


class RelativePositionTask(TileClassifierTask):
    """Show the centre patch of a 3x3 grid and one of its 8 neighbours; classify which.

    "we extract random pairs of patches from each image and train a convolutional
    neural net to predict the position of the second patch relative to the first" [0].
    Both patches go through the same backbone and an MLP on their concatenated
    features names the neighbour's cell (0..7, row by row, skipping the centre). As
    in [0], the patches are separated by a gap (half a patch on average: patches span
    two thirds of their cell) and jittered within their cells, so that low-level cues
    such as lines continuing across patch borders give no shortcut.
    """

    tile_fraction = (2, 3)  # [0]: 96-pixel patches with a 48-pixel gap

    def __init__(self, backbone):
        super().__init__(backbone, n_tiles=2, n_classes=8)

    def arrange(self, n, generator):
        targets = torch.randint(8, (n,), generator=generator, device=generator.device)
        neighbour = targets + (targets >= CENTRE).long()  # cell 0..8 without the centre
        return torch.stack([torch.full_like(targets, CENTRE), neighbour], dim=1), targets  # (B, 2)


@_fill_docstring
class RelativePositionFeaturizer(BaseFeaturizer):
    """Context-prediction (relative patch position) features as a scikit-learn transformer.

    From each training image the centre patch of a 3x3 grid and one of its eight
    neighbours are cut, each at a random place in its cell (a random gap between
    them). The backbone encodes both patches (shared weights) and an MLP on their
    concatenated features must say where the second lies relative to the first.
    ``transform`` applies the backbone to whole images.

    Images whose side is below 33 pixels are resized (bilinear) up to 33 for the
    pretext task only, so that patches are 7 pixels (11-pixel cells): 8x8 digits are
    then seen at about 4 times their size, while ``transform`` embeds them as they
    are. 28x28 MNIST becomes 33x33 too; images of 33 pixels or more keep their size.
    Rows that are ``1 x n`` signals become ``33 x n`` images the same way. The
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
    (100, 64)
    """

    _parameter_constraints = {**BaseFeaturizer._parameter_constraints}

    def __init__(
        self,
        *,
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
        return RelativePositionTask(backbone)
