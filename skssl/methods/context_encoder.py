"""Context encoder: learn features from which a hidden part of an image can be painted in.

- [0] Pathak, Krähenbühl, Donahue, Darrell & Efros, "Context Encoders: Feature Learning
  by Inpainting", CVPR 2016, arXiv:1604.07379.
"""

from numbers import Integral, Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions

from .. import augment
from .._panels import LEFT_OUT, ViewPanel
from ..backbones import pool
from ..base import BaseFeaturizer
from ..heads import mlp_decoder
from ..registry import register_method
from ..task import PretextTask

OVERLAP_WEIGHT = 10.0  # the paper's code weighs the predicted context band 10x the hole


def masked_mse(reconstruction, target, weights):
    """Weighted mean squared error over the pixels whose ``weights`` are non-zero.

    Parameters
    ----------
    reconstruction, target : Tensor of shape (B, C, H, W)
    weights : Tensor of shape (B, 1, H, W)
        Zero outside the region that counts (1 on the hole; more on an overlap band).

    Returns
    -------
    Tensor
        ``sum(w * (r - t)^2) / (C * sum(w))``: with 0/1 weights, the mean squared error
        over the masked pixels and their channels; pixels of weight 0 play no part.
    """
    squared = (reconstruction.float() - target.float()).pow(2) * weights  # (B, C, H, W)
    return squared.sum() / (weights.sum() * reconstruction.shape[1]).clamp(min=1e-12)


class ContextEncoderTask(PretextTask):
    """Hide a region of every image, encode the rest, decode, score the hidden pixels.

    "a convolutional neural network trained to generate the contents of an arbitrary
    image region conditioned on its surroundings" [0]; the reconstruction loss is the
    "normalized masked L2 distance" on the missing region [0]. Hidden pixels are set to
    the training set's mean (zero after the backbone's standardisation), as the paper's
    code fills them with the mean pixel value.
    """

    def __init__(self, backbone, pool_how, *, mask, mask_size, n_blocks, overlap):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.mask = mask
        self.mask_size = mask_size
        self.n_blocks = n_blocks
        self.overlap = overlap
        self.decoder = mlp_decoder(backbone.pooled_size(pool_how), backbone.in_shape)

    def views(self, batch, generator, targets=None):
        if self.mask == "center":
            hole = augment.center_mask(batch, area=self.mask_size)  # (B, 1, H, W)
        else:
            hole = augment.random_block_mask(batch, generator, area=self.mask_size, n_blocks=self.n_blocks)
        inputs = torch.where(hole, self.backbone.mean, batch)  # (B, C, H, W)
        return inputs, (batch, hole)

    def reconstruct(self, inputs):
        """The decoder's whole images ``(B, C, H, W)`` from masked ``inputs``."""
        return self.decoder(pool(self.backbone(inputs), self.pool_how)).view_as(inputs)  # from (B, C*H*W)

    def loss(self, inputs, targets):
        images, hole = targets
        return masked_mse(self.reconstruct(inputs), images, self.loss_weights(hole))

    def view_panels(self, batch, inputs, targets):
        images, hole = targets
        return [ViewPanel("masked input", inputs), ViewPanel("target: hidden pixels", images.where(hole, LEFT_OUT))]

    def reconstruction_panels(self, batch, inputs, targets):
        masked, target = self.view_panels(batch, inputs, targets)
        painted = self.reconstruct(inputs).where(targets[1], inputs)  # the network's pixels in the hole only
        return [masked, ViewPanel("painted in", painted), target]

    def loss_weights(self, hole):
        """Per-pixel loss weights (B, 1, H, W): 1 on the hole, ``OVERLAP_WEIGHT`` on the
        band of ``overlap`` visible pixels around it, 0 elsewhere."""
        weights = hole.float()
        if self.overlap:
            grown = F.max_pool2d(weights, 2 * self.overlap + 1, stride=1, padding=self.overlap)
            weights = weights + OVERLAP_WEIGHT * (grown - weights)
        return weights


@register_method(
    "context_encoder",
    task="paint in a masked region",
    paper="Pathak et al., CVPR 2016",
)
class ContextEncoderFeaturizer(BaseFeaturizer):
    """Inpainting features (context encoder) as a scikit-learn transformer.

    A region of every training image is hidden (a central square, or random blocks);
    the backbone encodes what is left and an MLP decoder paints the whole image back;
    the squared error counts only on the hidden pixels. The encoder's last stage gives
    the features. The paper's adversarial loss, which sharpens the painted pixels but
    is not needed for the features, is left out: this is its L2-only variant.

    Parameters
    ----------
    mask : {"random_blocks", "center"}, default="random_blocks"
        What to hide: ``n_blocks`` squares at random places in every image, or its
        central square. The paper's features are better with random blocks than with
        the central region, whose boundary the network learns to latch onto [1]; so
        they are on digits.
    mask_size : float, default=0.25
        Fraction of each image's area that is hidden: the central square's side is
        ``sqrt(mask_size)`` of the image's, and each of the ``n_blocks`` random blocks
        covers ``mask_size / n_blocks`` (they may overlap, so at most ``mask_size`` is
        hidden). Sides are rounded to whole pixels, at least one, so the task runs on
        images of any size (a 1 x n signal loses a band of columns).
    n_blocks : int, default=4
        Blocks per image for ``mask="random_blocks"``; ignored for ``"center"``.
    overlap : int, default=0
        Width in pixels of a band of visible context around the hidden region that
        the loss also covers, weighted 10x, as in the paper's code (4 pixels for
        128x128 images there). 0 scores the hidden pixels alone.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    DenoisingAEFeaturizer : restore an image from scattered corrupted pixels.

    References
    ----------
    .. [1] Pathak, Krähenbühl, Donahue, Darrell & Efros, "Context Encoders: Feature
       Learning by Inpainting", CVPR 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.context_encoder import ContextEncoderFeaturizer
    >>> X = load_digits().data[:100]
    >>> ContextEncoderFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    mask: str = "random_blocks"
    mask_size: float = 0.25
    n_blocks: int = 4
    overlap: int = 0

    _parameter_constraints = {
        "mask": [StrOptions({"random_blocks", "center"})],
        "mask_size": [Interval(Real, 0, 1, closed="right")],
        "n_blocks": [Interval(Integral, 1, None, closed="left")],
        "overlap": [Interval(Integral, 0, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return ContextEncoderTask(
            backbone,
            context.pool,
            mask=self.mask,
            mask_size=self.mask_size,
            n_blocks=self.n_blocks,
            overlap=self.overlap,
        )
