"""Split-brain autoencoder: two sub-networks, each predicting one part of the image from the other.

- [0] Zhang, Isola & Efros, "Split-Brain Autoencoders: Unsupervised Learning by
  Cross-Channel Prediction", CVPR 2017, arXiv:1611.09842.
- [1] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511.
"""

import torch.nn.functional as F
from torch import nn

from ..backbones import pool
from ..base import BaseFeaturizer
from ..color import ab_bins, quantize_ab, quantize_unit, rgb_to_lab
from ..registry import register_method
from ..task import PretextTask
from ._color_space import CellDecoder, ColorSpaceMixin, check_batch_norm_can_train, split_halves, target_grid

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

    def loss(self, inputs, targets):
        total = 0.0
        for features, decoder, target in zip(self.backbone.branch_outputs(inputs), self.decoders, targets):
            logits = decoder(pool(features, self.pool_how))  # (B, K * C, h, w)
            if target.ndim == 4:  # one distribution per channel and cell
                logits = logits.reshape(len(inputs), N_VALUE_BINS, *target.shape[1:])  # (B, K, C, h, w)
            total = total + F.cross_entropy(logits.float(), target)
        return total


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
    (100, 128)
    """

    def _split(self):
        return "lab" if self.image_shape_[0] == 3 else "halves"

    def _build_task(self, backbone, context):
        return SplitBrainTask(backbone, context.pool)
