"""Barlow Twins: make the cross-correlation of two views' embeddings the identity.

- [0] Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning via
  Redundancy Reduction", ICML 2021, arXiv:2103.03230.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from ..heads import projection_head
from ..losses import barlow_twins_loss
from ..registry import register_method
from ._siamese import TwoViewFeaturizer, TwoViewTask, view_kwargs


class BarlowTwinsTask(TwoViewTask):
    """Cross-correlation of batch-standardised embeddings, pushed towards the identity.

    The objective "measures the cross-correlation matrix between the embeddings of two
    identical networks fed with distorted versions of a batch of samples, and tries to
    make this matrix close to the identity" [0]: matching diagonals make the embedding
    invariant, vanishing off-diagonals decorrelate its components.
    """

    def __init__(self, backbone, pool_how, *, projection_dim, lambd, view_kwargs):
        super().__init__(backbone, pool_how, view_kwargs)
        self.head = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        self.lambd = lambd

    def loss(self, inputs, targets):
        z = self.head(self.features(inputs))  # (2B, D)
        z_a, z_b = z.chunk(2)
        return barlow_twins_loss(z_a, z_b, self.lambd)


@register_method(
    "barlow_twins",
    task="cross-correlation of the two views towards the identity",
    paper="Zbontar et al., ICML 2021",
)
class BarlowTwinsFeaturizer(TwoViewFeaturizer):
    """Redundancy-reduction features (Barlow Twins) as a scikit-learn transformer.

    Every image is augmented twice; the network learns embeddings whose dimensions
    agree across the two views (diagonal of the cross-correlation matrix at 1) and are
    decorrelated from each other (off-diagonal at 0). No negatives, predictor or
    momentum encoder. Features come from the last backbone stage.

    Parameters
    ----------
    projection_dim : int, default=128
        Output size of the projection MLP (8192 in [1]).
    lambd : float, default=0.02
        Weight of the off-diagonal (redundancy reduction) term. [1] uses 5e-3 with
        8,192 dimensions. The off-diagonal term has ``D (D - 1)`` entries against
        ``D`` on the diagonal, so a smaller projector wants a larger weight: with
        ``projection_dim=128``, 0.02 gave the best linear probe on digits among
        5e-3, 0.02, 0.1 and 0.3.
    %(view_parameters)s
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    VICRegFeaturizer : variance, invariance and covariance terms instead.

    References
    ----------
    .. [1] Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning
       via Redundancy Reduction", ICML 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import BarlowTwinsFeaturizer
    >>> X = load_digits().data[:100]
    >>> BarlowTwinsFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    projection_dim: int = 128
    lambd: float = 0.02

    _parameter_constraints = {
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "lambd": [Interval(Real, 0, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return BarlowTwinsTask(
            backbone,
            context.pool,
            projection_dim=self.projection_dim,
            lambd=self.lambd,
            view_kwargs=view_kwargs(self),
        )
