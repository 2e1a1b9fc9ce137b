"""VICReg: variance, invariance and covariance regularisation of two views' embeddings.

- [0] Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
  Self-Supervised Learning", ICLR 2022, arXiv:2105.04906.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from ..heads import projection_head
from ..losses import vicreg_loss
from ..registry import register_method
from ._siamese import TwoViewFeaturizer, TwoViewTask, view_kwargs


class VICRegTask(TwoViewTask):
    """Pull the two views' embeddings together; keep every dimension spread and decorrelated.

    VICReg "explicitly avoids the collapse problem with a simple regularization term on
    the variance of the embeddings along each dimension individually" [0], next to an
    invariance (mean squared error) term and a covariance term, each view regularised
    on its own.
    """

    def __init__(self, backbone, pool_how, *, projection_dim, coefficients, view_kwargs):
        super().__init__(backbone, pool_how, view_kwargs)
        # The "expander" of [0]: the projection MLP under another name.
        self.head = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        self.coefficients = coefficients  # (invariance, variance, covariance)

    def loss(self, inputs, targets):
        z = self.head(self.features(inputs))  # (2B, D)
        z_a, z_b = z.chunk(2)
        return vicreg_loss(z_a, z_b, *self.coefficients)


@register_method(
    "vicreg",
    task="variance, invariance and covariance terms",
    paper="Bardes et al., ICLR 2022",
)
class VICRegFeaturizer(TwoViewFeaturizer):
    """Variance-invariance-covariance features (VICReg) as a scikit-learn transformer.

    Every image is augmented twice; the network learns embeddings that agree across
    views (invariance), whose every dimension keeps a standard deviation of at least 1
    over the batch (variance) and whose dimensions are decorrelated (covariance).
    Features come from the last backbone stage, before the expander.

    Parameters
    ----------
    projection_dim : int, default=128
        Output size of the expander MLP (8192 in [1]).
    sim_coeff : float, default=25.0
        Weight ``λ`` of the invariance term.
    std_coeff : float, default=25.0
        Weight ``μ`` of the variance term.
    cov_coeff : float, default=1.0
        Weight ``ν`` of the covariance term.
    %(view_parameters)s
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    BarlowTwinsFeaturizer : decorrelation through the cross-correlation matrix.

    References
    ----------
    .. [1] Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization
       for Self-Supervised Learning", ICLR 2022.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import VICRegFeaturizer
    >>> X = load_digits().data[:100]
    >>> VICRegFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    projection_dim: int = 128
    sim_coeff: float = 25.0
    std_coeff: float = 25.0
    cov_coeff: float = 1.0

    _parameter_constraints = {
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "sim_coeff": [Interval(Real, 0, None, closed="left")],
        "std_coeff": [Interval(Real, 0, None, closed="left")],
        "cov_coeff": [Interval(Real, 0, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return VICRegTask(
            backbone,
            context.pool,
            projection_dim=self.projection_dim,
            coefficients=(self.sim_coeff, self.std_coeff, self.cov_coeff),
            view_kwargs=view_kwargs(self),
        )
