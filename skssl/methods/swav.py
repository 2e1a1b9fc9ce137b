"""SwAV: cluster one view online, predict its cluster codes from the other views.

- [0] Caron, Misra, Mairal, Goyal, Bojanowski & Joulin, "Unsupervised Learning of Visual
  Features by Contrasting Cluster Assignments", NeurIPS 2020, arXiv:2006.09882.
"""

from numbers import Integral, Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval
from torch import nn

from .. import _distributed
from ..heads import projection_head
from ..losses import sinkhorn_knopp, swav_loss
from ..registry import register_method
from ._siamese import MultiCropParameters, MultiCropTask, TwoViewFeaturizer, view_kwargs


class SwAVTask(MultiCropTask):
    """Embeddings scored against learnable unit prototypes; balanced codes as targets.

    "we compute a code from an augmented version of the image and predict this code from
    other augmented versions of the same image" [0]. The codes of each global view come
    from Sinkhorn-Knopp over the batch (and, with a queue, the embeddings of earlier
    batches: "we store features from the previous batches to augment the size of Z" [0]).
    The prototypes are "normalize[d] ... when updating them" [0]: after every step.
    """

    def __init__(
        self,
        backbone,
        pool_how,
        *,
        projection_dim,
        n_prototypes,
        temperature,
        epsilon,
        sinkhorn_iterations,
        queue_size,
        view_kwargs,
        n_local_crops,
        local_crop_scale,
    ):
        super().__init__(
            backbone, pool_how, view_kwargs, n_local_crops=n_local_crops, local_crop_scale=local_crop_scale
        )
        self.head = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        self.prototypes = nn.Linear(projection_dim, n_prototypes, bias=False)
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        # embeddings of both global views of earlier batches, newest first
        self.register_buffer("queue", torch.zeros(2, queue_size, projection_dim))
        self.queue_count = 0  # embeddings in the queue so far; it is used once full
        self._new_embeddings = None

    def get_extra_state(self):
        return torch.tensor(self.queue_count)  # saved with the weights: a tensor, not pickle

    def set_extra_state(self, state):
        self.queue_count = int(state)

    def loss(self, inputs, targets):
        z = F.normalize(self.head(self.features(inputs)), dim=1)  # (VB, D)
        scores = self.prototypes(z).unflatten(0, (self.n_views, -1))  # (V, B, K)
        batch = scores.shape[1]
        # under torchrun the codes balance the prototypes over every process's batch
        rank, world_size = _distributed.world()
        global_scores = _distributed.gather(scores[:2].detach().transpose(0, 1)).transpose(0, 1)  # (2, PB, K)
        queue_size = self.queue.shape[1]
        if queue_size:
            self._new_embeddings = z[: 2 * batch].detach().unflatten(0, (2, -1))  # (2, B, D)
            if self.queue_count >= queue_size:
                queued = self.prototypes(self.queue).detach()  # (2, L, K)
                global_scores = torch.cat([queued, global_scores], dim=1)  # (2, L + B, K)
        codes = torch.stack(
            [
                sinkhorn_knopp(s, self.epsilon, self.sinkhorn_iterations)[-world_size * batch :][
                    rank * batch : (rank + 1) * batch
                ]
                for s in global_scores
            ]
        )  # (2, B, K)
        return swav_loss(scores, codes, self.temperature)

    @torch.no_grad()
    def after_step(self, progress):
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        if self._new_embeddings is not None:
            queue_size = self.queue.shape[1]
            new = self._new_embeddings[:, :queue_size]  # (2, n, D), n <= L
            self.queue.copy_(torch.cat([new, self.queue[:, : queue_size - new.shape[1]]], dim=1))
            self.queue_count = min(queue_size, self.queue_count + new.shape[1])
            self._new_embeddings = None


@register_method(
    "swav",
    task="swapped prediction of Sinkhorn-Knopp cluster assignments",
    paper="Caron et al., NeurIPS 2020",
)
class SwAVFeaturizer(MultiCropParameters, TwoViewFeaturizer):
    """Swapped-assignment features (SwAV) as a scikit-learn transformer.

    Every image is augmented into two global views and ``n_local_crops`` local ones,
    embedded on the unit sphere and scored against ``n_prototypes`` learnable unit
    prototypes. The Sinkhorn-Knopp algorithm turns each global view's scores into soft
    cluster codes that share the batch out evenly over the prototypes; the network then
    learns to predict each global view's codes from every other view. Features come
    from the last backbone stage, before the projection head. The prototypes are
    ``task_.prototypes.weight``, the queue ``task_.queue``. It trains 100 epochs by
    default, twice the other two-view methods' 50: its features kept improving past 50
    on MNIST and on the digits (``benchmarks/RESULTS.md``).

    Parameters
    ----------
    n_prototypes : int, default=30
        Prototypes ``K`` (3,000 in [1] for ImageNet; a few per class suits digits).
    temperature : float, default=0.1
        Softmax temperature ``τ`` of the swapped prediction (as in [1]).
    epsilon : float, default=0.05
        Entropy regularisation ``ε`` of Sinkhorn-Knopp (as in [1]).
    sinkhorn_iterations : int, default=3
        Sinkhorn-Knopp iterations (as in [1]).
    queue_size : int, default=0
        Embeddings of earlier batches, per global view, added to the batch when
        computing codes, once the queue is full; 0 uses none. [1] adds 3,840 for
        batches of 256 to share them over 3,000 prototypes; with a few prototypes
        per class a batch of 256 needs none.
    projection_dim : int, default=128
        Output size of the projection MLP (as in [1]).
    %(multi_crop_parameters)s
    %(view_parameters)s
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    Notes
    -----
    The authors' freezing of the prototypes in the first epoch is left out. Any image
    size works: crops are resized back to the input size.

    See Also
    --------
    DINOFeaturizer : prototypes without Sinkhorn, a moving-average teacher instead.
    SimCLRFeaturizer : contrasts views directly instead of their cluster codes.

    References
    ----------
    .. [1] Caron, Misra, Mairal, Goyal, Bojanowski & Joulin, "Unsupervised Learning of
       Visual Features by Contrasting Cluster Assignments", NeurIPS 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.swav import SwAVFeaturizer
    >>> X = load_digits().data[:100]
    >>> SwAVFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    n_prototypes: int = 30
    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    queue_size: int = 0
    projection_dim: int = 128
    max_epochs: int = 100

    _parameter_constraints = {
        "n_prototypes": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "sinkhorn_iterations": [Interval(Integral, 1, None, closed="left")],
        "queue_size": [Interval(Integral, 0, None, closed="left")],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return SwAVTask(
            backbone,
            context.pool,
            projection_dim=self.projection_dim,
            n_prototypes=self.n_prototypes,
            temperature=self.temperature,
            epsilon=self.epsilon,
            sinkhorn_iterations=self.sinkhorn_iterations,
            queue_size=self.queue_size,
            view_kwargs=view_kwargs(self),
            n_local_crops=self.n_local_crops,
            local_crop_scale=self.local_crop_scale,
        )
