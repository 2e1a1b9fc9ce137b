"""What the two-view ("Siamese") methods share: SimCLR's views and a momentum target.

MoCo, BYOL, SimSiam, Barlow Twins and VICReg all embed two random views of every image
with one backbone and compare them; they differ in the head, the loss and whether a
slow-moving copy of the network supplies the targets.

- [0] SimCLR, Chen et al., ICML 2020, arXiv:2002.05709 (the views).
- [1] MoCo, He et al., CVPR 2020, arXiv:1911.05722 (the momentum update).
- [2] BYOL, Grill et al., NeurIPS 2020, arXiv:2006.07733 (the cosine schedule).
"""

import copy
import math
from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from .. import augment
from .._panels import image_panels
from .._parameters import DeclaredParameters
from ..backbones import pool
from ..base import MIN_WORKING_SIDE, BaseFeaturizer
from ..task import PretextTask


class SimCLRViewParameters(DeclaredParameters):
    """The parameters of :func:`simclr_view`, for every method that draws its views
    (documented by the ``%(view_parameters)s`` docstring section)."""

    crop_scale: tuple[float, float] = (0.3, 1.0)
    flip_prob: float = 0.0
    jitter_strength: float = 0.5
    blur_prob: float = 0.0

    _parameter_constraints = {
        "crop_scale": [tuple, list],
        "flip_prob": [Interval(Real, 0, 1, closed="both")],
        "jitter_strength": [Interval(Real, 0, 1, closed="both")],
        "blur_prob": [Interval(Real, 0, 1, closed="both")],
    }


class TwoViewFeaturizer(SimCLRViewParameters, BaseFeaturizer):
    """What the methods that compare two SimCLR views of every image share: the view
    parameters, their defaults of 50 epochs (SimCLR and SwAV override it: 100) of
    batches of 256 (contrastive and distillation losses want many views per batch), and
    small images enlarged to ``MIN_WORKING_SIDE``."""

    max_epochs: int = 50
    batch_size: int = 256

    _min_working_side = MIN_WORKING_SIDE  # images under 16 pixels work enlarged


class MultiCropParameters(DeclaredParameters):
    """Local crops besides the two global views (``%(multi_crop_parameters)s``)."""

    n_local_crops: int = 0
    local_crop_scale: tuple[float, float] = (0.1, 0.4)

    _parameter_constraints = {
        "n_local_crops": [Interval(Integral, 0, None, closed="left")],
        "local_crop_scale": [tuple, list],
    }


def simclr_view(batch, generator, *, crop_scale, flip_prob, jitter_strength, blur_prob):
    """One random view: resized crop + flip, colour jitter, grayscale, blur [0]."""
    view = augment.random_resized_crop(batch, generator, scale=crop_scale, flip=flip_prob)
    s = jitter_strength
    view = augment.color_jitter(view, generator, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s)
    view = augment.random_grayscale(view, generator, p=0.2)
    if blur_prob > 0:
        view = augment.gaussian_blur(view, generator, p=blur_prob)
    return view


def view_kwargs(featurizer):
    """The keyword arguments of :func:`simclr_view` from a featurizer's parameters."""
    low, high = featurizer.crop_scale
    if not 0 < low <= high <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {featurizer.crop_scale}.")
    return dict(
        crop_scale=(low, high),
        flip_prob=featurizer.flip_prob,
        jitter_strength=featurizer.jitter_strength,
        blur_prob=featurizer.blur_prob,
    )


class TwoViewTask(PretextTask):
    """Two SimCLR views of every image, embedded by one backbone; subclasses add the loss."""

    def __init__(self, backbone, pool_how, view_kwargs):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.view_kwargs = view_kwargs

    def views(self, batch, generator, targets=None):
        batch = augment.resize(batch, self.backbone.in_shape[1:])  # small images work enlarged
        views = [simclr_view(batch, generator, **self.view_kwargs) for _ in range(2)]
        return torch.cat(views), None  # (2B, C, H, W): view a of every image, then view b

    def features(self, inputs, backbone=None):
        """Pooled features ``(N, F)`` of ``inputs`` by ``backbone`` (default: the online one)."""
        return pool((backbone or self.backbone)(inputs), self.pool_how)

    def view_panels(self, batch, inputs, targets):
        n_local_crops = len(inputs) // len(batch) - 2  # two views, then any local crops
        titles = ["view a", "view b"] + [f"local crop {i}" for i in range(1, n_local_crops + 1)]
        return image_panels(titles, inputs, len(batch))


def frozen_copy(module):
    """A copy of ``module`` that the optimizer never moves: a momentum target's start."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def ema_update(target, online, momentum):
    """Move ``target``'s parameters towards ``online``'s: ``t <- m t + (1 - m) o``.

    The momentum update of MoCo, "θk ← mθk + (1 − m)θq" [1], and BYOL's target update
    [2]. Buffers (batch-norm statistics) are left alone: the target keeps its own.

    Examples
    --------
    >>> from torch import nn
    >>> target, online = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    >>> _ = nn.init.zeros_(target.weight), nn.init.ones_(online.weight)
    >>> ema_update(target, online, momentum=0.9)
    >>> round(target.weight.item(), 6)
    0.1
    """
    target_parameters = list(target.parameters())
    online_parameters = [p.detach() for p in online.parameters()]
    if len(target_parameters) != len(online_parameters):
        raise ValueError("target and online networks must have the same parameters.")
    torch._foreach_lerp_(target_parameters, online_parameters, 1.0 - momentum)


def cosine_momentum(base, progress):
    """BYOL's schedule: ``1 - (1 - base) (cos(pi progress) + 1) / 2``, from ``base`` to 1.

    "we set τ ≜ 1 − (1 − τbase) · (cos(πk/K) + 1)/2 with k the current training step and K the
    maximum number of training steps" [2].

    Examples
    --------
    >>> cosine_momentum(0.99, 0.0), cosine_momentum(0.99, 1.0)
    (0.99, 1.0)
    """
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class MultiCropTask(TwoViewTask):
    """Two global SimCLR views of every image, then ``n_local_crops`` local ones.

    Multi-crop, "two standard resolution crops and ... V additional low resolution crops
    that cover only small parts of the image" [3]; here every crop keeps the full
    resolution. The global views come first, drawn exactly as :class:`TwoViewTask` does.

    - [3] SwAV, Caron et al., NeurIPS 2020, arXiv:2006.09882.
    """

    def __init__(self, backbone, pool_how, view_kwargs, *, n_local_crops, local_crop_scale):
        super().__init__(backbone, pool_how, view_kwargs)
        low, high = local_crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"local_crop_scale must satisfy 0 < low <= high <= 1, got {local_crop_scale}.")
        self.n_local_crops = n_local_crops
        self.local_view_kwargs = {**view_kwargs, "crop_scale": (low, high)}

    @property
    def n_views(self):
        return 2 + self.n_local_crops

    def views(self, batch, generator, targets=None):
        global_views, _ = super().views(batch, generator)  # (2B, C, H, W)
        batch = augment.resize(batch, self.backbone.in_shape[1:])
        local_views = [simclr_view(batch, generator, **self.local_view_kwargs) for _ in range(self.n_local_crops)]
        return torch.cat([global_views, *local_views]), None  # ((2 + V) B, C, H, W)
