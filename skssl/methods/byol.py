"""BYOL: predict a slowly moving target network's embedding of the other view.

- [0] Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised
  Learning", NeurIPS 2020, arXiv:2006.07733.
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from ..base import MIN_WORKING_SIDE, BaseFeaturizer, _fill_docstring
from ..losses import normalized_mse
from ._siamese import (
    VIEW_CONSTRAINTS,
    TwoViewTask,
    _fill_view_docstring,
    cosine_momentum,
    ema_update,
    frozen_copy,
    view_kwargs,
)
from .simclr import projection_head


class BYOLTask(TwoViewTask):
    """An online network with a predictor chases an exponential average of itself.

    "we define the following mean squared error between the normalized predictions and
    target projections" [0]; the target "ξ ← τξ + (1 − τ)θ" [0] is updated after every
    step with ``τ`` rising from ``momentum`` to 1 on a cosine. No negatives are used.
    """

    def __init__(self, backbone, pool_how, *, projection_dim, momentum, view_kwargs):
        super().__init__(backbone, pool_how, view_kwargs)
        self.projector = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        self.predictor = projection_head(projection_dim, 512, projection_dim)  # same MLP as g [0]
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum = momentum

    def loss(self, inputs, targets):
        p = self.predictor(self.projector(self.features(inputs)))  # (2B, D)
        with torch.no_grad():
            z = self.target_projector(self.features(inputs, self.target_backbone))  # (2B, D)
        p_a, p_b = p.chunk(2)
        z_a, z_b = z.chunk(2)
        return normalized_mse(p_a, z_b) + normalized_mse(p_b, z_a)  # symmetrised [0]

    def momentum(self, progress):
        """The target's momentum ``τ`` at ``progress`` (the fraction of training done)."""
        return cosine_momentum(self.base_momentum, progress)

    def after_step(self, progress):
        tau = self.momentum(progress)
        ema_update(self.target_backbone, self.backbone, tau)
        ema_update(self.target_projector, self.projector, tau)


@_fill_docstring
@_fill_view_docstring
class BYOLFeaturizer(BaseFeaturizer):
    """Bootstrap-your-own-latent features (BYOL) as a scikit-learn transformer.

    Every image is augmented twice; an online network with a predictor learns to
    predict, for each view, the embedding a target network gives the other view. The
    target is an exponential moving average of the online network (``task_.target_backbone``
    and ``task_.target_projector``), so no negative pairs are needed. Features come from
    the last backbone stage of the online network.

    Parameters
    ----------
    projection_dim : int, default=128
        Output size of the projection and prediction MLPs (256 in [1]).
    momentum : float, default=0.99
        Base momentum ``τ_base`` of the target network, raised to 1 by the end of
        training on a cosine schedule (0.996 in [1], 0.99 in its ablations).
    %(view_parameters)s
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    SimSiamFeaturizer : BYOL without the moving-average target.
    MoCoFeaturizer : a momentum encoder with negatives.

    References
    ----------
    .. [1] Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised
       Learning", NeurIPS 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import BYOLFeaturizer
    >>> X = load_digits().data[:100]
    >>> BYOLFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 64)
    """

    _parameter_constraints = {
        **BaseFeaturizer._parameter_constraints,
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        **VIEW_CONSTRAINTS,
    }

    _min_working_side = MIN_WORKING_SIDE  # images under 16 pixels work enlarged

    def __init__(
        self,
        *,
        projection_dim=128,
        momentum=0.99,
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
        return BYOLTask(
            backbone,
            pool_how,
            projection_dim=self.projection_dim,
            momentum=self.momentum,
            view_kwargs=view_kwargs(self),
        )
