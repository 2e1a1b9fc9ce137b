"""MoCo: contrast queries with keys from a momentum encoder and a queue of old keys.

- [0] He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual
  Representation Learning", CVPR 2020, arXiv:1911.05722.
- [1] Chen, Fan, Girshick & He, "Improved Baselines with Momentum Contrastive
  Learning" (MoCo v2), 2020, arXiv:2003.04297.
"""

from numbers import Integral, Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval

from .._distributed import gather
from ..heads import projection_head
from ..losses import info_nce
from ..registry import register_method
from ._siamese import TwoViewFeaturizer, TwoViewTask, ema_update, frozen_copy, view_kwargs


class MoCoTask(TwoViewTask):
    """Queries from the network, keys from its momentum copy, negatives from a queue.

    "we maintain the dictionary as a queue of data samples: the encoded representations
    of the current mini-batch are enqueued, and the oldest are dequeued" [0]; the key
    encoder follows the query encoder by "θk ← mθk + (1 − m)θq" [0]. The MLP head and
    the augmentations are MoCo v2's [1]. Each view is the query of the other's key (the
    symmetrised loss) and both views' keys join the queue once the loss has read it.
    One device means no shuffled batch norm: the key encoder sees the same batch as
    the query encoder (on digits the features still beat random ones clearly).
    """

    def __init__(
        self, backbone, pool_how, *, projection_dim, temperature, momentum, queue_size, queue_length, view_kwargs
    ):
        super().__init__(backbone, pool_how, view_kwargs)
        self.head = projection_head(backbone.pooled_size(pool_how), 512, projection_dim)
        self.key_backbone = frozen_copy(backbone)
        self.key_head = frozen_copy(self.head)
        self.temperature = temperature
        self.momentum = momentum
        # Random unit keys until real ones arrive, as in the authors' code.
        queue = F.normalize(torch.randn(queue_size, projection_dim), dim=1)  # (K, D)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))
        self.queue_length = queue_length  # keys in use (<= K), fixed per fit

    def get_extra_state(self):
        return torch.tensor(self.queue_length)  # saved with the weights: a tensor, not pickle

    def set_extra_state(self, state):
        self.queue_length = int(state)

    def loss(self, inputs, targets):
        q = self.head(self.features(inputs))  # (2B, D)
        with torch.no_grad():
            k = self.key_head(self.features(inputs, self.key_backbone))  # (2B, D)
            k = F.normalize(k.float(), dim=1)
        q_a, q_b = q.chunk(2)
        k_a, k_b = k.chunk(2)
        negatives = self.queue[: self.queue_length].clone()  # (L, D); the backward pass reads it
        self.enqueue(gather(k))  # every process's keys
        t = self.temperature
        return (info_nce(q_a, k_b, negatives, t) + info_nce(q_b, k_a, negatives, t)) / 2

    @torch.no_grad()
    def enqueue(self, keys):
        """Replace the oldest keys in use by ``keys`` ``(n, D)`` (the last L if n > L)."""
        keys = keys[-self.queue_length :]  # (n, D), n <= L
        offsets = torch.arange(len(keys), device=keys.device)
        slots = (self.queue_pointer + offsets) % self.queue_length  # (n,)
        self.queue.index_copy_(0, slots, keys)
        self.queue_pointer.copy_((self.queue_pointer + len(keys)) % self.queue_length)

    @torch.no_grad()
    def after_step(self, progress):
        ema_update(self.key_backbone, self.backbone, self.momentum)
        ema_update(self.key_head, self.head, self.momentum)


@register_method(
    "moco",
    task="momentum key encoder and a queue of negatives",
    paper="He et al., CVPR 2020",
)
class MoCoFeaturizer(TwoViewFeaturizer):
    """Momentum-contrast features (MoCo v2) as a scikit-learn transformer.

    Every image is augmented twice; the network learns to match each view with the
    other view's key, computed by a slowly moving average of itself, against a queue of
    keys of earlier batches. Features come from the last backbone stage, before the
    projection head. The momentum encoder is ``task_.key_backbone`` and
    ``task_.key_head``; the keys in use are ``task_.queue[:task_.queue_length]``.

    Parameters
    ----------
    temperature : float, default=0.2
        Softmax temperature of the InfoNCE loss (0.2 in [2]).
    projection_dim : int, default=128
        Output size of the projection MLP.
    momentum : float, default=0.99
        Momentum ``m`` of the key encoder. [1] uses 0.999 over ImageNet's ~5,000
        steps an epoch; small data sets give far fewer steps, and a key encoder that
        hardly moves keeps its random initial weights.
    queue_size : int, default=4096
        Keys kept as negatives; capped at the number of training images, so that an
        image rarely meets its own old keys among the negatives.
    %(view_parameters)s
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    SimCLRFeaturizer : negatives from the same batch instead of a queue.
    BYOLFeaturizer : a momentum target without negatives.

    References
    ----------
    .. [1] He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual
       Representation Learning", CVPR 2020.
    .. [2] Chen, Fan, Girshick & He, "Improved Baselines with Momentum Contrastive
       Learning", arXiv:2003.04297, 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import MoCoFeaturizer
    >>> X = load_digits().data[:100]
    >>> MoCoFeaturizer(max_epochs=1, batch_size=50, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    temperature: float = 0.2
    projection_dim: int = 128
    momentum: float = 0.99
    queue_size: int = 4096

    _parameter_constraints = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "projection_dim": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "queue_size": [Interval(Integral, 1, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        return MoCoTask(
            backbone,
            context.pool,
            projection_dim=self.projection_dim,
            temperature=self.temperature,
            momentum=self.momentum,
            queue_size=self.queue_size,
            # capped at the training set; a rebuilt task gets its length from the file
            queue_length=min(self.queue_size, context.n_images or self.queue_size),
            view_kwargs=view_kwargs(self),
        )
