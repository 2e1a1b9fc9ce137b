"""DINO: a student matches the centred, sharpened output of its own moving average.

- [0] Caron, Touvron, Misra, Jégou, Mairal, Bojanowski & Joulin, "Emerging Properties
  in Self-Supervised Vision Transformers", ICCV 2021, arXiv:2104.14294.
"""

from numbers import Integral, Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval
from torch import nn

from .. import _distributed
from ..losses import dino_loss
from ..registry import register_method
from ._siamese import (
    MultiCropParameters,
    MultiCropTask,
    TwoViewFeaturizer,
    cosine_momentum,
    ema_update,
    frozen_copy,
    view_kwargs,
)


class NormalizedLinear(nn.Module):
    """``x / ||x||`` times unit-norm prototypes: the head's last layer in [0].

    "a weight normalized fully connected layer" [0] whose gain is fixed to 1, as in the
    authors' code (``norm_last_layer``), after the input's ℓ2 normalisation: the logits
    are cosine similarities.
    """

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))  # only the directions count

    def forward(self, x):
        return F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=1))  # (N, n_out)


def dino_head(n_features, n_hidden, n_bottleneck, out_dim):
    """ "a 3-layer multi-layer perceptron (MLP) with hidden dimension 2048 followed by ℓ2
    normalization and a weight normalized fully connected layer with K dimensions" [0].

    With batch norm after the hidden layers (the authors' ``use_bn_in_head``): without
    it the small CNN's outputs on digits drift to one constant vector for every image,
    which the centring turns into the uniform distribution (collapse).
    """
    return nn.Sequential(
        nn.Linear(n_features, n_hidden),
        nn.BatchNorm1d(n_hidden),
        nn.GELU(),
        nn.Linear(n_hidden, n_hidden),
        nn.BatchNorm1d(n_hidden),
        nn.GELU(),
        nn.Linear(n_hidden, n_bottleneck),
        NormalizedLinear(n_bottleneck, out_dim),
    )


class DINOTask(MultiCropTask):
    """A student sees every view; an exponential average of it, the teacher, the global ones.

    The teacher's outputs are centred by a moving average of themselves and sharpened
    by a low temperature: "centering prevents one dimension to dominate but encourages
    collapse to the uniform distribution, while the sharpening has the opposite effect"
    [0]. The teacher "θt ← λθt + (1 − λ)θs" [0] follows the student after every step,
    with ``λ`` rising from ``momentum`` to 1 on a cosine; the centre
    "c ← mc + (1 − m) (1/B) Σ gθt(xi)" [0] moves after every step as well.
    """

    def __init__(
        self,
        backbone,
        pool_how,
        *,
        out_dim,
        student_temperature,
        teacher_temperature,
        teacher_warmup,
        momentum,
        center_momentum,
        view_kwargs,
        n_local_crops,
        local_crop_scale,
    ):
        super().__init__(
            backbone, pool_how, view_kwargs, n_local_crops=n_local_crops, local_crop_scale=local_crop_scale
        )
        self.head = dino_head(backbone.pooled_size(pool_how), 256, 64, out_dim)  # 2048, 256 in [0]
        self.teacher_backbone = frozen_copy(backbone)
        self.teacher_head = frozen_copy(self.head)
        self.student_temperature = student_temperature
        self.teacher_temperatures = teacher_temperature  # (start, end) of the warm-up
        self.teacher_warmup = teacher_warmup
        self.base_momentum = momentum
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(out_dim))
        self.register_buffer("progress", torch.zeros(()))  # fraction of training done
        self._teacher_mean = None

    def teacher_temperature(self):
        """The teacher's temperature now: linear from start to end over the warm-up (a tensor)."""
        start, end = self.teacher_temperatures
        if self.teacher_warmup == 0:
            return torch.full_like(self.progress, end)
        return start + (end - start) * (self.progress / self.teacher_warmup).clamp(max=1.0)

    def loss(self, inputs, targets):
        student = self.head(self.features(inputs)).unflatten(0, (self.n_views, -1))  # (V, B, K)
        with torch.no_grad():
            global_views = inputs[: 2 * len(inputs) // self.n_views]  # (2B, C, H, W)
            teacher = self.teacher_head(self.features(global_views, self.teacher_backbone))  # (2B, K)
        # the centre moves in after_step, by the mean over every process's batch
        self._teacher_mean = _distributed.all_mean(teacher.float().mean(dim=0))
        teacher = teacher.unflatten(0, (2, -1))  # (2, B, K)
        return dino_loss(student, teacher, self.center, self.student_temperature, self.teacher_temperature())

    def momentum(self, progress):
        """The teacher's momentum ``λ`` at ``progress`` (the fraction of training done)."""
        return cosine_momentum(self.base_momentum, progress)

    @torch.no_grad()
    def after_step(self, progress):
        lam = self.momentum(progress)
        ema_update(self.teacher_backbone, self.backbone, lam)
        ema_update(self.teacher_head, self.head, lam)
        if self._teacher_mean is not None:
            self.center.lerp_(self._teacher_mean, 1.0 - self.center_momentum)
            self._teacher_mean = None
        self.progress.fill_(progress)


@register_method(
    "dino",
    task="self-distillation with a centred, sharpened teacher",
    paper="Caron et al., ICCV 2021",
)
class DINOFeaturizer(MultiCropParameters, TwoViewFeaturizer):
    """Self-distillation features (DINO) as a scikit-learn transformer.

    Every image is augmented into two global views and ``n_local_crops`` local ones. A
    student network learns to give, for each view, the same distribution over
    ``out_dim`` prototypes as a teacher gives the other (global) views; the teacher is
    an exponential moving average of the student, and its outputs are centred and
    sharpened so that neither one prototype nor the uniform distribution wins. Features
    come from the last backbone stage of the student. The teacher is
    ``task_.teacher_backbone`` and ``task_.teacher_head``, the centre ``task_.center``.

    Parameters
    ----------
    out_dim : int, default=256
        Prototypes ``K`` of the head's output (65,536 in [1]; digits need far fewer).
    student_temperature : float, default=0.1
        Softmax temperature ``τs`` of the student (as in [1]).
    teacher_temperature : float or tuple of 2 floats, default=0.04
        Softmax temperature ``τt`` of the teacher, lower than the student's to sharpen
        its output. A pair ``(start, end)`` rises linearly from ``start`` to ``end``
        over the first ``teacher_warmup`` of training ([1]: (0.04, 0.07) over the
        first 30 epochs; 0.04 throughout in the authors' default).
    teacher_warmup : float, default=0.3
        Fraction of the training steps over which a ``teacher_temperature`` pair
        warms up.
    momentum : float, default=0.99
        Base momentum ``λ`` of the teacher, raised to 1 by the end of training on a
        cosine schedule (0.996 in [1], over far more steps than digits give).
    center_momentum : float, default=0.9
        Rate ``m`` of the centre's moving average (as in [1]).
    %(multi_crop_parameters)s
    %(view_parameters)s
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    Notes
    -----
    The head is the paper's (a 3-layer GELU MLP, an ℓ2-normalised bottleneck and a
    weight-normalised last layer) at hidden size 256 and bottleneck 64 (2048 and 256 in
    [1]), with batch norm in the hidden layers (the authors' option for convnets),
    without which the small CNN collapses on digits. The authors' gradient clipping
    and frozen last layer in the first epoch are left out. The loss usually rises in
    the first epoch, as the centring spreads the teacher's near-constant initial
    output, and falls afterwards. Any image size works: crops are resized back to the
    input size.

    See Also
    --------
    BYOLFeaturizer : a moving-average target without centring, with a predictor.
    SwAVFeaturizer : prototypes with assignments balanced by Sinkhorn-Knopp.

    References
    ----------
    .. [1] Caron, Touvron, Misra, Jégou, Mairal, Bojanowski & Joulin, "Emerging
       Properties in Self-Supervised Vision Transformers", ICCV 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.dino import DINOFeaturizer
    >>> X = load_digits().data[:100]
    >>> DINOFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    out_dim: int = 256
    student_temperature: float = 0.1
    teacher_temperature: float = 0.04
    teacher_warmup: float = 0.3
    momentum: float = 0.99
    center_momentum: float = 0.9

    _parameter_constraints = {
        "out_dim": [Interval(Integral, 1, None, closed="left")],
        "student_temperature": [Interval(Real, 0, None, closed="neither")],
        "teacher_temperature": [Interval(Real, 0, None, closed="neither"), tuple, list],
        "teacher_warmup": [Interval(Real, 0, 1, closed="both")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "center_momentum": [Interval(Real, 0, 1, closed="both")],
    }

    def _teacher_temperatures(self):
        value = self.teacher_temperature
        pair = (value, value) if isinstance(value, Real) else tuple(value)
        if len(pair) != 2 or not all(isinstance(t, Real) and t > 0 for t in pair):
            raise ValueError(
                f"teacher_temperature must be a positive float or a pair (start, end) of them, got {value!r}."
            )
        return float(pair[0]), float(pair[1])

    def _build_task(self, backbone, context):
        return DINOTask(
            backbone,
            context.pool,
            out_dim=self.out_dim,
            student_temperature=self.student_temperature,
            teacher_temperature=self._teacher_temperatures(),
            teacher_warmup=self.teacher_warmup,
            momentum=self.momentum,
            center_momentum=self.center_momentum,
            view_kwargs=view_kwargs(self),
            n_local_crops=self.n_local_crops,
            local_crop_scale=self.local_crop_scale,
        )
