"""Split-brain autoencoder: two sub-networks, each predicting one part of the image from the other.

- [0] Zhang, Isola & Efros, "Split-Brain Autoencoders: Unsupervised Learning by
  Cross-Channel Prediction", CVPR 2017, arXiv:1611.09842.
- [1] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .._panels import ViewPanel
from ..backbones import pool
from ..base import BaseFeaturizer
from ..color import ab_bins, lab_to_rgb, quantize_ab, quantize_unit, rgb_to_lab
from ..registry import register_method
from ..task import PretextTask
from ._color_space import (
    CellDecoder,
    ColorSpaceMixin,
    bin_colours,
    cell_colours,
    check_batch_norm_can_train,
    lightness,
    split_halves,
    target_grid,
)

N_VALUE_BINS = 50  # L (and gray levels) as 50 classes of equal width, as [0] does for L


class SplitBrainTask(PretextTask):
    """Sub-network 1 predicts group 2 and sub-network 2 predicts group 1, both as classes.

    "Each sub-network is trained to perform a difficult task – predicting one subset
    of the data channels from another" [0]. Colour images: L predicts ab over the ab
    bins of [1] and ab predicts L over 50 bins; other images: the left half predicts
    the right half's values over 50 bins, and the right half the left's. The loss is
    the sum of the two cross-entropies.
    """

    def __init__(self, backbone, pool_how):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        channels, height, width = backbone.in_shape
        if backbone.split == "lab":
            self.grid = target_grid(height, width)
            n_classes = [len(ab_bins()), N_VALUE_BINS]  # L -> ab, ab -> L
        else:
            self.grid = target_grid(height, -(-width // 2))  # cells of a half image
            n_classes = [N_VALUE_BINS * channels] * 2  # every channel of the other half
        sizes = backbone.branch_pooled_sizes(pool_how)
        self.decoders = nn.ModuleList([CellDecoder(n, k, self.grid) for n, k in zip(sizes, n_classes)])

    def start_training(self, images, value_range, generator):
        check_batch_norm_can_train(self.backbone, len(images), "SplitBrainFeaturizer")
        return None

    def views(self, batch, generator, targets=None):
        if self.backbone.split == "lab":
            lab = F.adaptive_avg_pool2d(rgb_to_lab(batch), self.grid)  # (B, 3, h, w)
            return batch, [quantize_ab(lab[:, 1:]), quantize_unit(lab[:, 0] / 100, N_VALUE_BINS)]
        left, right = (F.adaptive_avg_pool2d(half, self.grid) for half in split_halves(batch))
        return batch, [quantize_unit(right, N_VALUE_BINS), quantize_unit(left, N_VALUE_BINS)]  # (B, C, h, w)

    def class_logits(self, inputs):
        """Each sub-network's class scores of the cells, in the order of the targets:
        ``(B, K, h, w)``, or ``(B, K, C, h, w)`` for every channel of a half image."""
        halves = self.backbone.split == "halves"  # one distribution per channel and cell
        logits = []
        for features, decoder in zip(self.backbone.branch_outputs(inputs), self.decoders):
            scores = decoder(pool(features, self.pool_how))  # (B, K * C, h, w)
            logits.append(scores.reshape(len(inputs), N_VALUE_BINS, -1, *self.grid) if halves else scores)
        return logits

    def loss(self, inputs, targets):
        total = 0.0
        for logits, target in zip(self.class_logits(inputs), targets):
            total = total + F.cross_entropy(logits.float(), target)
        return total

    def view_panels(self, batch, inputs, targets):
        seen, target = self._seen(inputs), self._cell_images(inputs, targets, "target")
        return [seen[0], target[0], seen[1], target[1]]

    def reconstruction_panels(self, batch, inputs, targets):
        seen, target = self._seen(inputs), self._cell_images(inputs, targets, "target")
        predicted = self._cell_images(
            inputs, [logits.argmax(dim=1) for logits in self.class_logits(inputs)], "predicted"
        )
        return [seen[0], predicted[0], target[0], seen[1], predicted[1], target[1]]

    def _seen(self, inputs):
        """What each sub-network sees, as two panels."""
        if self.backbone.split == "lab":
            lab = rgb_to_lab(inputs)
            colours = lab_to_rgb(torch.cat([torch.full_like(lab[:, :1], 50.0), lab[:, 1:]], dim=1))  # at one L
            return [ViewPanel("input 1: lightness", lightness(inputs)), ViewPanel("input 2: colours", colours)]
        left, right = split_halves(inputs)
        return [ViewPanel("input 1: left half", left), ViewPanel("input 2: right half", right)]

    def _cell_images(self, inputs, classes, title):
        """The classes of the cells, for each sub-network (as its targets), as two panels."""
        if self.backbone.split == "lab":
            ab, value = classes
            return [
                ViewPanel(f"{title} 1: cell colours", cell_colours(inputs, bin_colours(ab), self.grid)),
                ViewPanel(f"{title} 2: cell lightness", _bin_centres(value[:, None])),
            ]
        return [
            ViewPanel(f"{title} {i}: {half} half", _bin_centres(c))
            for i, (half, c) in enumerate(zip(("right", "left"), classes), 1)
        ]


def _bin_centres(index):
    """The [0, 1] values at the centres of the ``N_VALUE_BINS`` bins ``index``."""
    return (index.float() + 0.5) / N_VALUE_BINS


@register_method(
    "split_brain",
    task="two networks predict each other's channels",
    paper="Zhang et al., CVPR 2017",
)
class SplitBrainFeaturizer(ColorSpaceMixin, BaseFeaturizer):
    """Split-brain autoencoder features as a scikit-learn transformer.

    The network is two sub-networks side by side. For colour images, in CIE Lab, one
    sees the lightness L and predicts the colours ab, the other sees ab and predicts
    L [1]. Grayscale (and other non-RGB) images have no channels to split, so they are
    split in space: one sub-network sees the left half and predicts the right half,
    the other the reverse (an odd width's middle column belongs to both halves). The
    features of a stage are the two sub-networks' feature maps of that stage side by
    side, so the whole image is seen; ``layer="auto"`` takes the last stage.

    Both predictions are classifications, as [1] found them better than regression:
    ab over the 262 in-gamut 10 x 10 bins of :mod:`skssl.color`, L and gray levels
    over 50 equal bins. Differences from [1], for small images on a CPU: the targets
    are the mean values of a grid of at most 4 x 4 cells, predicted from the pooled
    features of each sub-network's last stage; each sub-network is a whole
    ``backbone`` (not half of one), so the features are twice as wide as the
    backbone's.

    Parameters
    ----------
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    ColorizationFeaturizer : one network predicting ab from L.
    DenoisingAEFeaturizer : features that let a decoder undo corruption.

    References
    ----------
    .. [1] Zhang, Isola & Efros, "Split-Brain Autoencoders: Unsupervised Learning by
       Cross-Channel Prediction", CVPR 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.split_brain import SplitBrainFeaturizer
    >>> X = load_digits().data[:100]
    >>> SplitBrainFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 1024)
    """

    def _split(self):
        return "lab" if self.image_shape_[0] == 3 else "halves"

    def _build_task(self, backbone, context):
        return SplitBrainTask(backbone, context.pool)
