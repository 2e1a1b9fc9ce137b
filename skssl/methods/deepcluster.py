"""DeepCluster: cluster the features, then learn to predict the clusters; repeat.

- [0] Caron, Bojanowski, Joulin & Douze, "Deep Clustering for Unsupervised Learning of
  Visual Features", ECCV 2018, arXiv:1807.05520.
"""

import warnings
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval
from torch import nn

from .. import augment
from .._panels import ViewPanel, captions
from .._training import chunks, to_unit
from ..backbones import pool
from ..base import BaseFeaturizer
from ..registry import register_method
from ..task import PretextTask

MINIBATCH_ABOVE = 10_000  # images; above this, MiniBatchKMeans clusters in seconds, not minutes


def pca_whiten(features, n_components, eps=1e-6):
    """PCA-reduce to ``n_components``, whiten and L2-normalise the rows of ``features``.

    What [0]'s code does to the features before k-means: "data PCA-reduced, whitened
    and L2-normalized" (to 256 dimensions there). Computed from the covariance's
    eigendecomposition in float64; directions with a variance below ``eps`` times the
    largest are not blown up by the whitening.

    Parameters
    ----------
    features : Tensor of shape (n, F)
    n_components : int
        Kept dimensions (at most ``F``).

    Returns
    -------
    Tensor of shape (n, min(n_components, F)), float32, rows of unit norm (or zero).

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
    >>> codes = pca_whiten(x, 4)
    >>> codes.shape, bool(torch.allclose(codes.norm(dim=1), torch.ones(100)))
    (torch.Size([100, 4]), True)
    """
    x = features.double()
    x = x - x.mean(dim=0)  # (n, F)
    covariance = x.T @ x / max(len(x) - 1, 1)  # (F, F)
    variances, directions = torch.linalg.eigh(covariance)  # ascending
    keep = min(n_components, x.shape[1])
    variances, directions = variances.flip(0)[:keep], directions.flip(1)[:, :keep]
    floor = eps * variances[0].clamp(min=0) + 1e-30
    x = x @ directions / variances.clamp(min=floor).sqrt()  # (n, keep), unit variance
    return F.normalize(x, dim=1).float()


def kmeans_labels(codes, n_clusters, seed):
    """Cluster index of every row of ``codes`` (ndarray (n, d)) by k-means."""
    if n_clusters == 1:
        return np.zeros(len(codes), dtype=np.int64)
    kind = MiniBatchKMeans if len(codes) > MINIBATCH_ABOVE else KMeans
    with warnings.catch_warnings():
        # identical features (tiny or degenerate inputs) give fewer distinct clusters
        warnings.simplefilter("ignore", ConvergenceWarning)
        return kind(n_clusters=n_clusters, random_state=seed).fit_predict(codes).astype(np.int64)


class DeepClusterTask(PretextTask):
    """Pseudo-labels from k-means on the network's own features, a head that predicts them.

    DeepCluster "iteratively groups the features with a standard clustering algorithm,
    k-means, and uses the subsequent assignments as supervision to update the weights
    of the network" [0]. Every ``reassign`` epochs the pooled features of all training
    images (eval mode, no augmentation) are PCA-whitened, L2-normalised and clustered,
    and the head is drawn afresh (normal, std 0.01, zero bias, as in the authors' code):
    cluster indices mean nothing from one clustering to the next. Against "trivial
    parametrization" [0] each image's loss is weighted by ``n / (k n_c)`` for its
    cluster of ``n_c`` images, which gives in expectation the gradient of [0]'s
    remedy, "to sample images based on a uniform distribution over the classes, or
    pseudo-labels", without touching the loop's sampler.
    """

    def __init__(self, backbone, pool_how, *, n_clusters, pca_dim, reassign, crop_scale, flip_prob):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.pca_dim = pca_dim
        self.reassign = reassign
        self.crop_scale = crop_scale
        self.flip_prob = flip_prob
        self.head = nn.Linear(backbone.pooled_size(pool_how), n_clusters)
        self.register_buffer("cluster_weights", torch.ones(n_clusters))  # (K,)
        self.register_buffer("epochs_since_clustering", torch.zeros((), dtype=torch.long))
        self.pseudo_labels = None  # (n,) on the CPU, saved with the weights as extra state

    def get_extra_state(self):
        return torch.empty(0, dtype=torch.long) if self.pseudo_labels is None else self.pseudo_labels

    def set_extra_state(self, state):
        self.pseudo_labels = state.cpu() if len(state) else None

    @property
    def n_clusters(self):
        return self.head.out_features

    def features(self, inputs):
        return pool(self.backbone(inputs), self.pool_how)  # (B, F)

    @torch.no_grad()
    def start_epoch(self, images, value_range, generator):
        device = self.backbone.mean.device
        stale = self.pseudo_labels is None or len(self.pseudo_labels) != len(images)
        if stale or int(self.epochs_since_clustering) >= self.reassign:
            self.pseudo_labels = self.cluster(images, value_range, generator).cpu()
            self.reset_head(generator)
            self.epochs_since_clustering.zero_()
        self.epochs_since_clustering += 1
        return self.pseudo_labels.to(device)

    @torch.no_grad()
    def cluster(self, images, value_range, generator):
        """k-means pseudo-labels ``(n,)`` of the whole set; sets ``cluster_weights``."""
        device = self.backbone.mean.device
        training = self.training
        self.eval()
        features = torch.cat(
            [self.features(to_unit(rows, value_range)).float() for rows in chunks(images, device, 1024)]
        )  # (n, F)
        self.train(training)
        codes = pca_whiten(features, self.pca_dim).cpu().numpy()  # (n, d)
        n_clusters = min(self.n_clusters, len(codes))  # fewer images than clusters: one each
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
        labels = torch.as_tensor(kmeans_labels(codes, n_clusters, seed), device=device)  # (n,)
        counts = torch.bincount(labels, minlength=self.n_clusters).float()  # (K,)
        weights = len(labels) / (n_clusters * counts.clamp(min=1))
        self.cluster_weights.copy_(torch.where(counts > 0, weights, 0.0))
        return labels

    @torch.no_grad()
    def reset_head(self, generator):
        """Draw the classifier afresh from the fit's generator (so runs repeat exactly)."""
        weight = self.head.weight
        draw = torch.randn(weight.shape, generator=generator, device=generator.device)
        weight.copy_(0.01 * draw)
        self.head.bias.zero_()

    def start_training(self, images, value_range, generator):
        """Forget the clusters of an earlier fit: ``warm_start`` may bring other images.
        (A resumed run loads its own pseudo-labels after this.)"""
        self.pseudo_labels = None

    def views(self, batch, generator, targets=None):
        view = augment.random_resized_crop(batch, generator, scale=self.crop_scale, flip=self.flip_prob)
        return view, targets  # the pseudo-labels, which start_epoch gave the loop

    def view_panels(self, batch, inputs, targets):
        return [ViewPanel("cropped view", inputs, captions("cluster {}", targets))]

    def loss(self, inputs, targets):
        logits = self.head(self.features(inputs))  # (B, K)
        return F.cross_entropy(logits.float(), targets, weight=self.cluster_weights)


@register_method(
    "deepcluster",
    task="classify k-means pseudo-labels, re-clustered every few epochs",
    paper="Caron et al., ECCV 2018",
)
class DeepClusterFeaturizer(BaseFeaturizer):
    """DeepCluster features as a scikit-learn transformer.

    Every ``reassign`` epochs the network's features of all training images are
    PCA-reduced, whitened, L2-normalised and clustered by k-means (scikit-learn's
    ``KMeans``, or ``MiniBatchKMeans`` above 10,000 images); in between, the network
    learns to predict each image's cluster from a randomly cropped view. The
    classification head is re-initialised every round, and each image's loss is
    weighted by the inverse size of its cluster, the loss-weighted form of the
    paper's sampling "based on a uniform distribution over the classes". Features
    come from the last backbone stage, the one that is clustered. The pseudo-labels
    of the current round are ``task_.pseudo_labels`` and are saved with the weights,
    so that a run resumed from a checkpoint continues exactly. The epoch loss starts
    near ``log(n_clusters)`` in every round, so ``n_iter_no_change`` should span more
    than ``reassign`` epochs.

    Differences from [1]: no Sobel filtering (the backbone sees the images as they
    are), a linear head on the backbone instead of AlexNet's MLP, and the sizes below.

    Parameters
    ----------
    n_clusters : int, default=100
        Clusters ``k`` of every round ([1] uses 10,000 for ImageNet's 1,000 classes
        and found some over-segmentation beneficial). When there are fewer training
        images, each image is its own cluster (``k`` = number of images).
    pca_dim : int, default=32
        Dimensions kept by the PCA before whitening (256 in [1]); capped at the
        feature size.
    reassign : int, default=3
        Epochs between two clusterings (the authors' code's ``--reassign``, 1 for
        ImageNet). A small set gives few steps per epoch, too few for a freshly
        initialised head to learn its clusters: on 1,000 digits the loss stays at
        chance with 1 and falls within every round with 3.
    crop_scale : tuple of 2 floats, default=(0.5, 1.0)
        Range of the area fraction kept by the random resized crop of the training
        views.
    flip_prob : float, default=0.0
        Probability of a horizontal flip (0 suits digits and text; [1] flips).
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    RotNetFeaturizer : features from predicting rotations.
    SimCLRFeaturizer : contrastive features from augmented views.

    References
    ----------
    .. [1] Caron, Bojanowski, Joulin & Douze, "Deep Clustering for Unsupervised
       Learning of Visual Features", ECCV 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.deepcluster import DeepClusterFeaturizer
    >>> X = load_digits().data[:100]
    >>> DeepClusterFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    n_clusters: int = 100
    pca_dim: int = 32
    reassign: int = 3
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip_prob: float = 0.0

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "pca_dim": [Interval(Integral, 1, None, closed="left")],
        "reassign": [Interval(Integral, 1, None, closed="left")],
        "crop_scale": [tuple, list],
        "flip_prob": [Interval(Real, 0, 1, closed="both")],
    }

    def _build_task(self, backbone, context):
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}.")
        return DeepClusterTask(
            backbone,
            context.pool,
            n_clusters=self.n_clusters,
            pca_dim=self.pca_dim,
            crop_scale=(low, high),
            reassign=self.reassign,
            flip_prob=self.flip_prob,
        )
