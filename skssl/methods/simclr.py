"""SimCLR: learn features that agree across two random views of an image.

- [0] Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning
  of Visual Representations", ICML 2020, arXiv:2002.05709.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval
from torch import nn

from ..base import MIN_WORKING_SIDE, BaseFeaturizer, _fill_docstring
from .._distributed import gather_with_grad
from ..losses import nt_xent
from ._siamese import VIEW_CONSTRAINTS, TwoViewTask, _fill_view_docstring, view_kwargs


def projection_head(n_features, n_hidden, n_out):
    """The MLP ``g`` of [0]: "a MLP with one hidden layer" between features and loss."""
    return nn.Sequential(
        nn.Linear(n_features, n_hidden),
        nn.BatchNorm1d(n_hidden),
        nn.ReLU(inplace=True),
        nn.Linear(n_hidden, n_out),
    )


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


@_fill_docstring
@_fill_view_docstring
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
    (100, 64)
    """

    _parameter_constraints = {
        **BaseFeaturizer._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        **VIEW_CONSTRAINTS,
    }

    _min_working_side = MIN_WORKING_SIDE  # images under 16 pixels work enlarged

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
        return SimCLRTask(
            backbone,
            pool_how,
            projection_dim=self.projection_dim,
            temperature=self.temperature,
            view_kwargs=view_kwargs(self),
        )
