"""Colorization: learn features by predicting the colours of a grayscale image.

- [0] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511.
"""

from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions

from .._data import to_tensor
from .._panels import ViewPanel
from .._training import to_unit
from ..backbones import pool
from ..base import BaseFeaturizer
from ..color import AB_LIMIT, ab_bins, densify, rebalancing_weights, rgb_to_lab, sparse_encode_ab
from ..losses import rebalanced_cross_entropy
from ..registry import register_method
from ..task import PretextTask
from ._color_space import (
    CellDecoder,
    ColorSpaceMixin,
    bin_colours,
    cell_colours,
    check_batch_norm_can_train,
    lightness,
    target_grid,
)


def _ab_cells(batch, grid):
    """The mean ab colour of every cell, ``(B, 2, h, w)``, of [0, 1] RGB images."""
    return F.adaptive_avg_pool2d(rgb_to_lab(batch)[:, 1:], grid)


class ColorizationTask(PretextTask):
    """See the lightness, predict the colours: classification over ab bins, or regression.

    "Given an input lightness channel X, our objective is to learn a mapping Ŷ = F(X)
    to the two associated color channels Y" [0]; the colours are predicted as a
    distribution over the quantized ab bins, trained with a cross-entropy in which
    "each pixel is weighed by factor w, based on its closest ab bin" [0].
    """

    def __init__(self, backbone, pool_how, *, objective, soft_encoding, rebalancing):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.objective = objective
        self.soft_encoding = soft_encoding
        self.rebalancing = rebalancing
        self.grid = target_grid(*backbone.in_shape[1:])
        n_bins = len(ab_bins())
        n_outputs = n_bins if objective == "classification" else 2
        self.decoder = CellDecoder(backbone.pooled_size(pool_how), n_outputs, self.grid)
        self.register_buffer("class_weights", torch.ones(n_bins))  # fitted in start_epoch

    @torch.no_grad()
    def start_training(self, images, value_range, generator, chunk=4096):
        """Encode the colour targets of the whole training set once (the targets of an
        image never change) and set the rebalancing weights from them.

        Returns the per-image targets that :meth:`views` would build, which the loop
        then hands to :meth:`views` with each batch.
        """
        check_batch_norm_can_train(self.backbone, len(images), "ColorizationFeaturizer")
        device = self.class_weights.device
        targets = []
        for start in range(0, len(images), chunk):
            rows = images[start : start + chunk]
            rows = rows if isinstance(rows, torch.Tensor) else to_tensor(rows, device)
            targets.append(self._targets_of(to_unit(rows.to(device), value_range)))
        targets = torch.cat(targets)
        if self.objective == "classification" and self.rebalancing != 1:
            nearest = targets[:, 0].long()  # (n, h, w): the bin of the highest weight
            counts = torch.bincount(nearest.flatten(), minlength=len(self.class_weights))
            self.class_weights.copy_(rebalancing_weights(counts.float(), lam=self.rebalancing))
        return targets

    def _targets_of(self, batch):
        """The packed targets of [0, 1] RGB images: the cells' ab over ``AB_LIMIT`` for
        regression, else their bins' indices (as floats) then weights, ``(B, 2K, h, w)``."""
        ab = _ab_cells(batch, self.grid)  # (B, 2, h, w)
        if self.objective == "regression":
            return ab / AB_LIMIT
        index, weight = sparse_encode_ab(ab, soft=self.soft_encoding)
        return torch.cat([index.float(), weight], dim=1)

    def views(self, batch, generator, targets=None):
        return batch, self._targets_of(batch) if targets is None else targets

    def predict(self, inputs):
        """Scores of the ab bins ``(B, Q, h, w)`` of every cell, or its ab over
        ``AB_LIMIT`` ``(B, 2, h, w)`` for regression, from [0, 1] RGB ``inputs``."""
        return self.decoder(pool(self.backbone(inputs), self.pool_how))

    def loss(self, inputs, targets):
        predicted = self.predict(inputs)  # (B, Q or 2, h, w)
        if self.objective == "regression":
            return F.mse_loss(predicted.float(), targets)
        index, weight = targets.chunk(2, dim=1)
        return rebalanced_cross_entropy(predicted, densify(index.long(), weight), self.class_weights)

    def view_panels(self, batch, inputs, targets):
        cells = targets if self.objective == "regression" else targets[:, 0].long()  # the bin of the highest weight
        return [ViewPanel("input: lightness", lightness(inputs)), self._colour_panel("target", inputs, cells)]

    def reconstruction_panels(self, batch, inputs, targets):
        predicted = self.predict(inputs)
        cells = predicted if self.objective == "regression" else predicted.argmax(dim=1)
        seen, target = self.view_panels(batch, inputs, targets)
        return [seen, self._colour_panel("predicted", inputs, cells), target]

    def _colour_panel(self, title, inputs, cells):
        """The cells' colours, every cell's ab over ``AB_LIMIT`` ``(B, 2, h, w)`` or its
        bin ``(B, h, w)``, at the cells' lightness."""
        ab = cells * AB_LIMIT if self.objective == "regression" else bin_colours(cells)
        return ViewPanel(f"{title}: cell colours", cell_colours(inputs, ab, self.grid))


@register_method(
    "colorization",
    task="predict the colour (ab) of a lightness-only image",
    paper="Zhang et al., ECCV 2016",
)
class ColorizationFeaturizer(ColorSpaceMixin, BaseFeaturizer):
    """Colorization features as a scikit-learn transformer.

    Every colour image is converted to CIE Lab; the backbone sees only the lightness
    L and a small MLP head predicts the colours ab. By default, as in [1], the colours
    are classes: the ab plane is cut into 10 x 10 bins (the 262 that sRGB colours
    reach), targets are soft-encoded over the 5 nearest bins and rare colours are
    weighted up (class rebalancing). The backbone's last stage gives the features, of
    the lightness alone, as the network never sees colour.

    Differences from [1], for small images on a CPU: the colours are predicted for a
    grid of at most 4 x 4 cells (the mean colour of each cell) from the pooled
    features of the last stage, instead of per pixel at a quarter of the resolution;
    the colour prior of the rebalancing weights is counted on the training images.

    Colour images are required: grayscale input raises a ``ValueError``.

    Parameters
    ----------
    objective : {"classification", "regression"}, default="classification"
        ``"classification"`` over the ab bins with a cross-entropy [1]; ``"regression"``
        of the ab values (divided by 110) with a squared error, the baseline of [1].
    soft_encoding : bool, default=True
        Spread each target colour over its 5 nearest bins with a Gaussian kernel
        (sigma = 5) [1]; False puts it all on the nearest bin. Classification only.
    rebalancing : float, default=0.5
        ``λ`` of [1]: the weight of every bin is inversely proportional to a mix of the
        smoothed colour prior (``1 - λ``) and the uniform distribution (``λ``), in
        (0, 1]; 1 turns rebalancing off. Classification only.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    SplitBrainFeaturizer : two sub-networks predicting L from ab and ab from L.
    DenoisingAEFeaturizer : features that let a decoder undo corruption.

    References
    ----------
    .. [1] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016.

    Examples
    --------
    >>> from skssl.datasets import load_sample_patches
    >>> from skssl.methods.colorization import ColorizationFeaturizer
    >>> X, _ = load_sample_patches(16, 100, random_state=0)
    >>> ColorizationFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    objective: str = "classification"
    soft_encoding: bool = True
    rebalancing: float = 0.5

    _parameter_constraints = {
        "objective": [StrOptions({"classification", "regression"})],
        "soft_encoding": ["boolean"],
        "rebalancing": [Interval(Real, 0, 1, closed="right")],
    }

    def _split(self):
        return "lightness"

    def _build_task(self, backbone, context):
        channels = self.image_shape_[0]
        if channels != 3:  # checked after the layer, so that bad parameters are named first
            raise ValueError(
                f"ColorizationFeaturizer needs colour (RGB) images, with 3 channels, to "
                f"predict colour from lightness; got images with {channels} channel(s) of "
                f"shape (C, H, W)={tuple(self.image_shape_)}. Pass (n, H, W, 3) arrays, or "
                f"flat rows with image_shape=(height, width, 3); for grayscale images use "
                f"another featurizer, e.g. SplitBrainFeaturizer."
            )
        return ColorizationTask(
            backbone,
            context.pool,
            objective=self.objective,
            soft_encoding=self.soft_encoding,
            rebalancing=self.rebalancing,
        )
