"""SimCLR: learn features that agree across two random views of an image.

- [0] Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning
  of Visual Representations", ICML 2020, arXiv:2002.05709.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from .._distributed import gather_with_grad
from ..heads import projection_head
from ..losses import nt_xent
from ..registry import register_method
from ._siamese import TwoViewFeaturizer, TwoViewTask, view_kwargs


class SimCLRTask(TwoViewTask):
    """Two augmented views per image, a projection MLP and the NT-Xent loss."""

    def __init__(self, backbone, pool_how, *, projection_dim, temperature, view_kwargs):
        super().__init__(backbone, pool_how, view_kwargs)
        self.head = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        self.temperature = temperature

    def loss(self, inputs, targets):
        z = self.head(self.features(inputs))  # (2B, D)
        z_a, z_b = z.chunk(2)
        # under torchrun the negatives span every process's share of the batch
        return nt_xent(gather_with_grad(z_a), gather_with_grad(z_b), self.temperature)


@register_method(
    "simclr",
    task="agree across two augmented views, NT-Xent loss",
    paper="Chen et al., ICML 2020",
)
class SimCLRFeaturizer(TwoViewFeaturizer):
    """Contrastive features (SimCLR) as a scikit-learn transformer.

    Every image is augmented twice; the network learns to match each view with its
    partner among all views of the batch (NT-Xent). Features come from the last
    backbone stage, before the projection head. It trains 100 epochs by default, twice
    the other two-view methods' 50: its features kept improving past 50 on MNIST and
    on the digits (``benchmarks/RESULTS.md``).

    Parameters
    ----------
    temperature : float, default=0.5
        Softmax temperature of the NT-Xent loss.
    projection_dim : int, default=128
        Output size of the projection MLP.
    %(view_parameters)s
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
    >>> SimCLRFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    temperature: float = 0.5
    projection_dim: int = 128
    max_epochs: int = 100

    _parameter_constraints = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return SimCLRTask(
            backbone,
            context.pool,
            projection_dim=self.projection_dim,
            temperature=self.temperature,
            view_kwargs=view_kwargs(self),
        )
