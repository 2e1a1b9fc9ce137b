"""Losses shared by several methods.

- [0] SimCLR, Chen et al., ICML 2020, arXiv:2002.05709.
- [1] MoCo, He et al., CVPR 2020, arXiv:1911.05722; v2, Chen et al., arXiv:2003.04297.
- [2] BYOL, Grill et al., NeurIPS 2020, arXiv:2006.07733.
- [3] SimSiam, Chen & He, CVPR 2021, arXiv:2011.10566.
- [4] Barlow Twins, Zbontar et al., ICML 2021, arXiv:2103.03230.
- [5] VICReg, Bardes, Ponce & LeCun, ICLR 2022, arXiv:2105.04906.
"""

import functools

import torch
import torch.nn.functional as F


def nt_xent(z_a, z_b, temperature=0.5):
    """Normalized temperature-scaled cross-entropy (NT-Xent, InfoNCE) of two views.

    "the final loss is computed across all positive pairs, both (i, j) and (j, i), in
    a mini-batch" [0]: each of the ``2B`` embeddings must pick its partner view among
    the other ``2B - 1`` by cosine similarity divided by ``temperature``.

    Parameters
    ----------
    z_a, z_b : Tensor of shape (B, D)
        Embeddings of the two views; row ``i`` of each comes from the same image.
    temperature : float, default=0.5

    Returns
    -------
    Tensor
        Scalar mean loss.

    Examples
    --------
    >>> import torch
    >>> z = torch.eye(4)
    >>> float(nt_xent(z, z, temperature=0.1)) < 0.01
    True
    """
    n = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)  # (2B, D)
    logits = z @ z.T / temperature  # (2B, 2B)
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, partner)


def _in_float32(loss):
    """Run ``loss`` with autocast off: bfloat16 keeps ~3 digits, too few for correlations near 1."""

    @functools.wraps(loss)
    def wrapper(first, *args, **kwargs):
        with torch.autocast(first.device.type, enabled=False):
            return loss(first, *args, **kwargs)

    return wrapper


@_in_float32
def info_nce(query, key, negatives, temperature=0.2):
    """InfoNCE of MoCo: each query must pick its own key among a queue of negatives.

    "a contrastive loss ... whose value is low when q is similar to its positive key
    k+ and dissimilar to all other keys (considered negative keys for q)" [1]. All
    vectors are L2-normalised; the positive logit comes first, then one per negative.

    - [1] MoCo, He et al., CVPR 2020, arXiv:1911.05722.

    Parameters
    ----------
    query, key : Tensor of shape (B, D)
        Queries and their positive keys; row ``i`` of each comes from the same image.
    negatives : Tensor of shape (K, D)
        Keys of other images (MoCo's queue).
    temperature : float, default=0.2

    Returns
    -------
    Tensor
        Scalar mean loss.

    Examples
    --------
    >>> import torch
    >>> q = torch.eye(4)
    >>> float(info_nce(q, q, -q, temperature=0.1)) < 0.01
    True
    """
    q = F.normalize(query.float(), dim=1)  # (B, D)
    k = F.normalize(key.float(), dim=1)  # (B, D)
    n = F.normalize(negatives.float(), dim=1)  # (K, D)
    logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ n.T], dim=1) / temperature  # (B, 1 + K)
    positive = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, positive)


@_in_float32
def normalized_mse(prediction, target):
    """BYOL's loss: squared distance of the L2-normalised vectors, ``2 - 2 cos``.

    "a mean squared error between the normalized predictions and target projections"
    [2]. ``target`` is treated as a constant (no gradient flows into it).

    - [2] BYOL, Grill et al., NeurIPS 2020, arXiv:2006.07733.

    Parameters
    ----------
    prediction, target : Tensor of shape (B, D)

    Returns
    -------
    Tensor
        Scalar mean over the batch, in [0, 4].

    Examples
    --------
    >>> import torch
    >>> float(normalized_mse(torch.ones(2, 3), -torch.ones(2, 3)))
    4.0
    """
    p = F.normalize(prediction.float(), dim=1)  # (B, D)
    z = F.normalize(target.detach().float(), dim=1)  # (B, D)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


@_in_float32
def negative_cosine(prediction, target):
    """SimSiam's loss: the negative cosine similarity, with a stop-gradient on ``target``.

    ``D(p, z) = -(p / ||p||) . (z / ||z||)`` where "z2 is treated as a constant in
    this term" [3].

    - [3] SimSiam, Chen & He, CVPR 2021, arXiv:2011.10566.

    Parameters
    ----------
    prediction, target : Tensor of shape (B, D)

    Returns
    -------
    Tensor
        Scalar mean over the batch, in [-1, 1].

    Examples
    --------
    >>> import torch
    >>> round(float(negative_cosine(torch.ones(2, 3), 2 * torch.ones(2, 3))), 6)
    -1.0
    """
    p = F.normalize(prediction.float(), dim=1)  # (B, D)
    z = F.normalize(target.detach().float(), dim=1)  # (B, D)
    return -(p * z).sum(dim=1).mean()


def _off_diagonal(matrix):
    """The off-diagonal entries of a square matrix, flattened."""
    n = matrix.shape[0]
    return matrix.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


@_in_float32
def barlow_twins_loss(z_a, z_b, lambd=5e-3, eps=1e-5):
    """Barlow Twins: push the cross-correlation of two views' embeddings to the identity.

    "The invariance term of the objective, by trying to equate the diagonal elements of
    the cross-correlation matrix to 1, makes the embedding invariant to the distortions
    applied. The redundancy reduction term, by trying to equate the off-diagonal
    elements of the cross-correlation matrix to 0, decorrelates the different vector
    components of the embedding" [4]. Each embedding dimension is standardised over the
    batch first (batch norm without affine), as in the authors' code.

    - [4] Barlow Twins, Zbontar et al., ICML 2021, arXiv:2103.03230.

    Parameters
    ----------
    z_a, z_b : Tensor of shape (B, D)
        Embeddings of the two views; row ``i`` of each comes from the same image.
    lambd : float, default=5e-3
        Weight of the off-diagonal (redundancy reduction) term.
    eps : float, default=1e-5
        Added to the variance before standardising.

    Returns
    -------
    Tensor
        Scalar: ``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.

    Examples
    --------
    >>> import torch
    >>> z = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    >>> float(barlow_twins_loss(z, z, lambd=0.0)) < 1e-3
    True
    """

    def standardise(z):
        z = z.float()
        return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)  # (B, D)

    n = z_a.shape[0]
    c = standardise(z_a).T @ standardise(z_b) / n  # (D, D)
    return (1 - torch.diagonal(c)).pow(2).sum() + lambd * _off_diagonal(c).pow(2).sum()


@_in_float32
def vicreg_loss(z_a, z_b, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, eps=1e-4):
    """VICReg: invariance, variance and covariance terms on two views' embeddings.

    VICReg "explicitly avoids the collapse problem with a simple regularization term on
    the variance of the embeddings along each dimension individually" and "combines the
    variance term with a decorrelation mechanism based on redundancy reduction and
    covariance regularization" [5]. Written as in the authors' code: the invariance
    term is the mean squared error, the variance term (a hinge at 1 on the standard
    deviation of every dimension) averages the two views, and the covariance term adds
    the two views' sums of squared off-diagonal covariances, divided by ``D``.

    - [5] VICReg, Bardes, Ponce & LeCun, ICLR 2022, arXiv:2105.04906.

    Parameters
    ----------
    z_a, z_b : Tensor of shape (B, D)
        Embeddings of the two views; row ``i`` of each comes from the same image.
    sim_coeff, std_coeff, cov_coeff : float, default=25.0, 25.0, 1.0
        Weights ``lambda``, ``mu`` and ``nu`` of the three terms.
    eps : float, default=1e-4
        Added to the variance under the square root.

    Returns
    -------
    Tensor
        Scalar loss.

    Examples
    --------
    >>> import torch
    >>> z = torch.zeros(8, 4)
    >>> float(vicreg_loss(z, z))  # collapsed: only the variance hinge is left, 25 * 0.99
    24.75
    """
    z_a, z_b = z_a.float(), z_b.float()
    n, d = z_a.shape
    invariance = F.mse_loss(z_a, z_b)
    variance = covariance = 0
    for z in (z_a, z_b):
        z = z - z.mean(dim=0)  # (B, D)
        std = torch.sqrt(z.pow(2).sum(dim=0) / max(n - 1, 1) + eps)  # (D,)
        variance = variance + F.relu(1 - std).mean() / 2
        cov = z.T @ z / max(n - 1, 1)  # (D, D)
        covariance = covariance + _off_diagonal(cov).pow(2).sum() / d
    return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
