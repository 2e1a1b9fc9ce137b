"""SimCLR: learn features that agree across two random views of an image.

- [0] Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning
  of Visual Representations", ICML 2020, arXiv:2002.05709.
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval
from torch import nn

from .. import augment
from ..backbones import pool
from ..base import BaseFeaturizer, PretextTask, _fill_docstring
from ..losses import nt_xent


def projection_head(n_features, n_hidden, n_out):
    """The MLP ``g`` of [0]: "a MLP with one hidden layer" between features and loss."""
    return nn.Sequential(
        nn.Linear(n_features, n_hidden),
        nn.BatchNorm1d(n_hidden),
        nn.ReLU(inplace=True),
        nn.Linear(n_hidden, n_out),
    )


class SimCLRTask(PretextTask):
    """Two augmented views per image, a projection MLP and the NT-Xent loss."""

    def __init__(self, backbone, pool_how, *, projection_dim, temperature, view_kwargs):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.head = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        self.temperature = temperature
        self.view_kwargs = view_kwargs

    def views(self, batch, generator):
        views = [simclr_view(batch, generator, **self.view_kwargs) for _ in range(2)]
        return torch.cat(views), None  # (2B, C, H, W): view a of every image, then view b

    def loss(self, inputs, targets):
        z = self.head(pool(self.backbone(inputs), self.pool_how))  # (2B, D)
        z_a, z_b = z.chunk(2)
        return nt_xent(z_a, z_b, self.temperature)


def simclr_view(batch, generator, *, crop_scale, flip_prob, jitter_strength, blur_prob):
    """One random view: resized crop + flip, colour jitter, grayscale, blur [0]."""
    view = augment.random_resized_crop(batch, generator, scale=crop_scale, flip=flip_prob)
    s = jitter_strength
    view = augment.color_jitter(
        view, generator, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s
    )
    view = augment.random_grayscale(view, generator, p=0.2)
    if blur_prob > 0:
        view = augment.gaussian_blur(view, generator, p=blur_prob)
    return view


@_fill_docstring
class SimCLRFeaturizer(BaseFeaturizer):
    """Contrastive features (SimCLR) as a scikit-learn transformer.

    Every image is augmented twice; the network learns to match each view with its
    partner among all views of the batch (NT-Xent). Features come from the last
    backbone stage, before the projection head.

    Parameters
    ----------
    temperature : float, default=0.5
        Softmax temperature of the NT-Xent loss.
    projection_dim : int, default=128
        Output size of the projection MLP.
    crop_scale : tuple of 2 floats, default=(0.3, 1.0)
        Range of the area fraction kept by the random resized crop.
    flip_prob : float, default=0.0
        Probability of a horizontal flip (0 suits digits and text, where a mirror
        image is another symbol; 0.5 suits natural images).
    jitter_strength : float, default=0.5
        Colour jitter strength ``s`` of [1]: brightness, contrast and saturation
        factors in ``[1 - 0.8 s, 1 + 0.8 s]``, hue shift up to ``0.2 s``.
    blur_prob : float, default=0.0
        Probability of a Gaussian blur per view.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    RotNetFeaturizer : features from predicting rotations.

    References
    ----------
    .. [1] Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive
       Learning of Visual Representations", ICML 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import SimCLRFeaturizer
    >>> X = load_digits().data[:100]
    >>> SimCLRFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 64)
    """

    _parameter_constraints = {
        **BaseFeaturizer._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "crop_scale": [tuple, list],
        "flip_prob": [Interval(Real, 0, 1, closed="both")],
        "jitter_strength": [Interval(Real, 0, 1, closed="both")],
        "blur_prob": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self,
        *,
        temperature=0.5,
        projection_dim=128,
        crop_scale=(0.3, 1.0),
        flip_prob=0.0,
        jitter_strength=0.5,
        blur_prob=0.0,
        backbone="small_cnn",
        backbone_kwargs=None,
        layer="auto",
        pool="auto",
        max_epochs=50,
        batch_size=256,
        learning_rate=1e-3,
        weight_decay=1e-4,
        device="auto",
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
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}.")
        view_kwargs = dict(
            crop_scale=(low, high),
            flip_prob=self.flip_prob,
            jitter_strength=self.jitter_strength,
            blur_prob=self.blur_prob,
        )
        return SimCLRTask(
            backbone,
            pool_how,
            projection_dim=self.projection_dim,
            temperature=self.temperature,
            view_kwargs=view_kwargs,
        )
