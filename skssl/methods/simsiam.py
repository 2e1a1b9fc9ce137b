"""SimSiam: a Siamese network with a predictor and a stop-gradient, nothing more.

- [0] Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
  arXiv:2011.10566.
"""

from numbers import Integral

from sklearn.utils._param_validation import Interval

from ..heads import projection_head
from ..losses import negative_cosine
from ..registry import register_method
from ._siamese import TwoViewFeaturizer, TwoViewTask, view_kwargs


class SimSiamTask(TwoViewTask):
    """Predict one view's projection from the other's, with a stop-gradient on the target.

    "a stop-gradient operation plays an essential role in preventing collapsing" [0]:
    the loss ``D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2`` is the negative
    cosine similarity of each view's prediction to the other view's projection. There
    is neither a momentum encoder nor negative pairs.
    """

    def __init__(self, backbone, pool_how, *, projection_dim, view_kwargs):
        super().__init__(backbone, pool_how, view_kwargs)
        self.projector = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        # [0]'s predictor is a 4x bottleneck (2048 -> 512 -> 2048); on small data a wide
        # hidden layer, as in BYOL, learned faster and more reliably.
        self.predictor = projection_head(projection_dim, 512, projection_dim)

    def loss(self, inputs, targets):
        z = self.projector(self.features(inputs))  # (2B, D)
        p = self.predictor(z)  # (2B, D)
        z_a, z_b = z.chunk(2)
        p_a, p_b = p.chunk(2)
        return (negative_cosine(p_a, z_b) + negative_cosine(p_b, z_a)) / 2  # z detached inside


@register_method(
    "simsiam",
    task="a predictor and a stop-gradient, no momentum encoder",
    paper="Chen & He, CVPR 2021",
)
class SimSiamFeaturizer(TwoViewFeaturizer):
    """Simple-Siamese features (SimSiam) as a scikit-learn transformer.

    Every image is augmented twice; a predictor MLP learns to map one view's projection
    onto the other's, whose gradient is stopped. No negatives, no large batches and no
    momentum encoder are needed. Features come from the last backbone stage.

    Parameters
    ----------
    projection_dim : int, default=128
        Output size of the projection and prediction MLPs (2048 in [1]).
    %(view_parameters)s
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    BYOLFeaturizer : the same with a moving-average target network.

    References
    ----------
    .. [1] Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import SimSiamFeaturizer
    >>> X = load_digits().data[:100]
    >>> SimSiamFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    projection_dim: int = 128

    _parameter_constraints = {
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return SimSiamTask(backbone, context.pool, projection_dim=self.projection_dim, view_kwargs=view_kwargs(self))
