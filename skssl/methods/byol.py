"""BYOL: predict a slowly moving target network's embedding of the other view.

- [0] Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised
  Learning", NeurIPS 2020, arXiv:2006.07733.
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval

from ..heads import projection_head
from ..losses import normalized_mse
from ..registry import register_method
from ._siamese import TwoViewFeaturizer, TwoViewTask, cosine_momentum, ema_update, frozen_copy, view_kwargs


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


@register_method(
    "byol",
    task="predict a moving-average target network, no negatives",
    paper="Grill et al., NeurIPS 2020",
)
class BYOLFeaturizer(TwoViewFeaturizer):
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
    (100, 512)
    """

    projection_dim: int = 128
    momentum: float = 0.99

    _parameter_constraints = {
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
    }

    def _build_task(self, backbone, context):
        return BYOLTask(
            backbone,
            context.pool,
            projection_dim=self.projection_dim,
            momentum=self.momentum,
            view_kwargs=view_kwargs(self),
        )
