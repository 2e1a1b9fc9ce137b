"""Exemplar: every image is its own class, recognised across heavy augmentation.

- [0] Dosovitskiy, Springenberg, Riedmiller & Brox, "Discriminative Unsupervised Feature
  Learning with Convolutional Neural Networks", NeurIPS 2014, arXiv:1406.6909.
- [1] Kolesnikov, Zhai & Beyer, "Revisiting Self-Supervised Visual Representation
  Learning", CVPR 2019, arXiv:1901.09005 (the triplet-loss version).
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._panels import image_panels
from ..backbones import pool
from ..base import BaseFeaturizer
from ..heads import projection_head
from ..losses import triplet_loss
from ..registry import register_method
from ..task import PretextTask
from ._siamese import SimCLRViewParameters, simclr_view, view_kwargs


class ExemplarTask(PretextTask):
    """``n_views`` augmented views of every image; views of one image are one class.

    "we train the network to discriminate between a set of surrogate classes. Each
    surrogate class is formed by applying a variety of transformations to a randomly
    sampled 'seed' image patch" [0]. As in [1], a triplet loss on L2-normalised
    embeddings replaces the classifier over all images, so the batch, not the
    dataset, sets the number of classes.
    """

    def __init__(self, backbone, pool_how, *, n_views, embedding_dim, margin, mining, view_kwargs):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.n_views = n_views
        self.margin = margin
        self.mining = mining
        self.view_kwargs = view_kwargs
        self.head = projection_head(backbone.pooled_size(pool_how), 512, embedding_dim)

    def views(self, batch, generator, targets=None):
        views = [simclr_view(batch, generator, **self.view_kwargs) for _ in range(self.n_views)]
        labels = torch.arange(len(batch), device=batch.device).repeat(self.n_views)  # (V*B,)
        return torch.cat(views), labels  # (V*B, C, H, W): view 1 of every image, then view 2, ...

    def loss(self, inputs, labels):
        z = self.head(pool(self.backbone(inputs), self.pool_how))  # (V*B, D)
        return triplet_loss(z, labels, margin=self.margin, mining=self.mining)

    def view_panels(self, batch, inputs, targets):
        return image_panels("view", inputs, len(batch))  # the labels name the source image: one class a row


@register_method(
    "exemplar",
    task="every image its own class under heavy augmentation, triplet loss",
    paper="Dosovitskiy et al., NeurIPS 2014",
)
class ExemplarFeaturizer(SimCLRViewParameters, BaseFeaturizer):
    """Exemplar features (each image its own class) as a scikit-learn transformer.

    Every training image is augmented ``n_views`` times; a triplet loss pulls the
    L2-normalised embeddings of one image's views together and pushes other images'
    views at least ``margin`` farther away. Features come from the last backbone stage,
    before the projection MLP.

    Parameters
    ----------
    n_views : int, default=4
        Augmented views of every image per step (8 in [2]); the triplets are mined
        among the ``n_views * batch_size`` embeddings.
    margin : float, default=0.5
        Margin of the triplet loss on squared distances of unit vectors (0 to 4), as
        in [2].
    mining : {"semi_hard", "batch_hard"}, default="semi_hard"
        Which triplets count: every positive pair against the nearest negative farther
        than the positive (FaceNet's semi-hard triplets, as in [2]), or, for every
        view, its farthest positive against its nearest negative (Hermans et al.).
        From scratch on digits, ``"batch_hard"`` stalls with the loss near ``margin``
        and gains far less over random features. See :func:`skssl.losses.triplet_loss`.
    embedding_dim : int, default=128
        Output size of the projection MLP (a linear 1000-d output in [2]).
    crop_scale : tuple of 2 floats, default=(0.2, 1.0)
        Range of the area fraction kept by the random resized crop; [1] draws
        strong translations and scalings.
    flip_prob : float, default=0.0
        Probability of a horizontal flip (0 suits digits and text, where a mirror
        image is another symbol; 0.5 suits natural images).
    jitter_strength : float, default=0.5
        Colour jitter strength ``s`` of SimCLR: brightness, contrast and saturation
        factors in ``[1 - 0.8 s, 1 + 0.8 s]``, hue shift up to ``0.2 s``.
    blur_prob : float, default=0.0
        Probability of a Gaussian blur per view.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    SimCLRFeaturizer : two views per image and a softmax over the batch.

    References
    ----------
    .. [1] Dosovitskiy, Springenberg, Riedmiller & Brox, "Discriminative Unsupervised
       Feature Learning with Convolutional Neural Networks", NeurIPS 2014.
    .. [2] Kolesnikov, Zhai & Beyer, "Revisiting Self-Supervised Visual Representation
       Learning", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.exemplar import ExemplarFeaturizer
    >>> X = load_digits().data[:100]
    >>> ExemplarFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    n_views: int = 4
    margin: float = 0.5
    mining: str = "semi_hard"
    embedding_dim: int = 128
    crop_scale: tuple[float, float] = (0.2, 1.0)

    _parameter_constraints = {
        "n_views": [Interval(Integral, 2, None, closed="left")],
        "margin": [Interval(Real, 0, None, closed="left")],
        "mining": [StrOptions({"semi_hard", "batch_hard"})],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return ExemplarTask(
            backbone,
            context.pool,
            n_views=self.n_views,
            embedding_dim=self.embedding_dim,
            margin=self.margin,
            mining=self.mining,
            view_kwargs=view_kwargs(self),
        )
