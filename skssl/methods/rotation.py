"""RotNet: learn features by predicting how an image was rotated.

- [0] Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by Predicting
  Image Rotations", ICLR 2018, arXiv:1803.07728.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .._panels import image_panels
from ..augment import resize
from ..backbones import pool
from ..base import MIN_WORKING_SIDE, BaseFeaturizer, stage_before_last
from ..registry import register_method
from ..task import PretextTask


class RotationTask(PretextTask):
    """Show every image at 0, 90, 180 and 270 degrees; classify the rotation.

    "we train ConvNets to recognize the one of the four image rotations that has been
    applied to the image it gets as input" [0]. Non-square images keep their shape
    only at 0 and 180 degrees, so for them the task is 2-way.
    """

    def __init__(self, backbone, pool_how, n_rotations):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.n_rotations = n_rotations
        n_features = backbone.pooled_size(pool_how)
        self.head = nn.Linear(n_features, n_rotations)

    def views(self, batch, generator, targets=None):
        batch = resize(batch, self.backbone.in_shape[1:])  # small images work enlarged
        quarter_turns = range(0, 4, 4 // self.n_rotations)  # (0, 1, 2, 3) or (0, 2)
        inputs = torch.cat([torch.rot90(batch, k, dims=(2, 3)) for k in quarter_turns])  # (R*B, C, H, W)
        targets = torch.arange(self.n_rotations, device=batch.device).repeat_interleave(len(batch))
        return inputs, targets

    def loss(self, inputs, targets):
        logits = self.head(pool(self.backbone(inputs), self.pool_how))  # (R*B, R)
        return F.cross_entropy(logits, targets)

    def view_panels(self, batch, inputs, targets):
        quarter_turns = range(0, 4, 4 // self.n_rotations)
        return image_panels([f"{90 * k}°" for k in quarter_turns], inputs, len(batch), labels=targets)


@register_method(
    "rotnet",
    task="predict the rotation (0, 90, 180 or 270 degrees)",
    paper="Gidaris et al., ICLR 2018",
)
class RotNetFeaturizer(BaseFeaturizer):
    """Rotation-prediction features (RotNet) as a scikit-learn transformer.

    Each training image is shown at 0, 90, 180 and 270 degrees and the network
    learns to tell which: recognising the rotation requires recognising the object.
    Features come from the stage before the last (``layer="auto"``), where rotation
    features are known to be most general.

    Images whose longer side is under 16 pixels are enlarged (bilinear, by the
    smallest integer factor that reaches 16) for training and for ``transform`` alike:
    8x8 digits work at 16x16. At 8x8 the small CNN's ``conv1`` leaves 2x2 maps and
    rotation features were no better than random ones; at 16x16 they beat them on a
    linear probe (see ``benchmarks/RESULTS.md``).

    Parameters
    ----------
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    SimCLRFeaturizer : contrastive features from augmented views.
    DenoisingAEFeaturizer : features that let a decoder undo corruption.

    References
    ----------
    .. [1] Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by
       Predicting Image Rotations", ICLR 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> X = load_digits().data[:100]
    >>> RotNetFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 256)
    """

    batch_size: int = 48

    _min_working_side = MIN_WORKING_SIDE

    _auto_layer = staticmethod(stage_before_last)

    def _build_task(self, backbone, context):
        _, height, width = self.image_shape_
        return RotationTask(backbone, context.pool, n_rotations=4 if height == width else 2)
