"""Losses shared by several methods.

- [0] SimCLR, Chen et al., ICML 2020, arXiv:2002.05709.
- [1] MoCo, He et al., CVPR 2020, arXiv:1911.05722; v2, Chen et al., arXiv:2003.04297.
- [2] BYOL, Grill et al., NeurIPS 2020, arXiv:2006.07733.
- [3] SimSiam, Chen & He, CVPR 2021, arXiv:2011.10566.
- [4] Barlow Twins, Zbontar et al., ICML 2021, arXiv:2103.03230.
- [5] VICReg, Bardes, Ponce & LeCun, ICLR 2022, arXiv:2105.04906.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
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
def info_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
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
def normalized_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
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
def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
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
def barlow_twins_loss(z_a: torch.Tensor, z_b: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5) -> torch.Tensor:
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
def vicreg_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
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


def _cross_view_entropy(targets, log_probs):
    """Mean cross-entropy ``-sum_k q_t log p_s`` over the batch and every pair of views
    ``t != s``: target view ``t`` is prediction view ``t``, so a view never predicts itself.

    ``targets`` (T, B, K) are constants; ``log_probs`` (S, B, K) with ``S >= T``.
    """
    n_targets, n_predictions, batch = targets.shape[0], log_probs.shape[0], targets.shape[1]
    cross = -torch.einsum("tbk,sbk->ts", targets.detach(), log_probs) / batch  # (T, S)
    other_view = ~torch.eye(n_targets, n_predictions, dtype=torch.bool, device=cross.device)
    return cross[other_view].mean()


@_in_float32
def dino_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> torch.Tensor:
    """DINO: the student's softmax of every view matches the teacher's of the other views.

    "we minimize the cross-entropy loss w.r.t. the parameters of the student network:
    min H(Pt(x), Ps(x))", where the teacher's output is centred and sharpened: "The
    center c is updated with an exponential moving average" and "Sharpening is obtained
    by using a low value for the temperature τt in the teacher softmax normalization"
    [6]. Each of the teacher's (global) views is the target of every other student view.

    - [6] DINO, Caron et al., ICCV 2021, arXiv:2104.14294.

    Parameters
    ----------
    student : Tensor of shape (S, B, K)
        Student logits for ``S`` views of ``B`` images over ``K`` prototypes.
    teacher : Tensor of shape (T, B, K)
        Teacher logits for the first ``T <= S`` of those views (no gradient flows).
    center : Tensor of shape (K,)
        Subtracted from the teacher's logits.
    student_temperature, teacher_temperature : float, default=0.1, 0.04

    Returns
    -------
    Tensor
        Scalar: mean cross-entropy over the batch and the ``T (S - 1)`` view pairs.

    Examples
    --------
    >>> import torch
    >>> logits = 100 * torch.eye(3).expand(2, 3, 3)  # both views agree, sharply
    >>> float(dino_loss(logits, logits, torch.zeros(3))) < 1e-6
    True
    """
    targets = F.softmax((teacher.float() - center.float()) / teacher_temperature, dim=-1)  # (T, B, K)
    log_probs = F.log_softmax(student.float() / student_temperature, dim=-1)  # (S, B, K)
    return _cross_view_entropy(targets, log_probs)


@torch.no_grad()
@_in_float32
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, n_iterations: int = 3) -> torch.Tensor:
    """SwAV's soft cluster assignments: an equipartition of ``N`` samples over ``K`` prototypes.

    "Q* = Diag(u) exp(C⊤Z / ε) Diag(v), where u and v are renormalization vectors ...
    computed using a small number of matrix multiplications using the iterative
    Sinkhorn-Knopp algorithm" [7]. In the paper's ``(K, N)`` layout every iteration
    scales the rows (prototypes) to sum to ``1 / K``, then the columns (samples) to
    ``1 / N``; the result is returned transposed and times ``N``, so each sample's
    row is a distribution over the prototypes and each prototype's column sums to about
    ``N / K`` (exactly, as the iterations go on).

    - [7] SwAV, Caron et al., NeurIPS 2020, arXiv:2006.09882.

    Parameters
    ----------
    scores : Tensor of shape (N, K)
        Similarities of the samples' embeddings to the prototypes.
    epsilon : float, default=0.05
        Entropy regularisation; smaller gives harder assignments.
    n_iterations : int, default=3

    Returns
    -------
    Tensor of shape (N, K)
        The codes ``Q``, float32, rows summing to 1. No gradient flows.

    Examples
    --------
    >>> import torch
    >>> q = sinkhorn_knopp(torch.zeros(4, 2) + torch.tensor([1.0, 0.0]))  # all prefer 0
    >>> q.sum(dim=1).tolist(), q.sum(dim=0).tolist()  # yet both prototypes get half
    ([1.0, 1.0, 1.0, 1.0], [2.0, 2.0])
    """
    logits = scores.float() / epsilon
    q = torch.exp(logits - logits.max()).T  # (K, N); the shift cancels in the normalisation
    n_prototypes, n_samples = q.shape
    q = q / q.sum()
    for _ in range(n_iterations):
        q = q / q.sum(dim=1, keepdim=True) / n_prototypes  # each prototype gets 1 / K
        q = q / q.sum(dim=0, keepdim=True) / n_samples  # each sample gives 1 / N
    return (q * n_samples).T  # (N, K)


@_in_float32
def swav_loss(scores: torch.Tensor, codes: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SwAV's swapped prediction: every view predicts the codes of the other views.

    "we propose a 'swapped' prediction problem where we predict the code of a view from
    the representation of another view": ``ℓ(z_t, q_s) = −Σ_k q_s^(k) log p_t^(k)`` with
    ``p_t^(k) = softmax_k(z_t⊤c_k / τ)`` [7]. The codes (from :func:`sinkhorn_knopp`)
    are constants.

    - [7] SwAV, Caron et al., NeurIPS 2020, arXiv:2006.09882.

    Parameters
    ----------
    scores : Tensor of shape (S, B, K)
        Prototype scores ``z⊤c`` of ``S`` views of ``B`` images.
    codes : Tensor of shape (T, B, K)
        Codes of the first ``T <= S`` views (those assigned to clusters).
    temperature : float, default=0.1

    Returns
    -------
    Tensor
        Scalar: mean cross-entropy over the batch and the ``T (S - 1)`` view pairs.

    Examples
    --------
    >>> import torch
    >>> scores = torch.eye(3).expand(2, 3, 3)
    >>> round(float(swav_loss(scores, torch.eye(3).expand(2, 3, 3), temperature=0.01)), 6)
    0.0
    """
    log_probs = F.log_softmax(scores.float() / temperature, dim=-1)  # (S, B, K)
    return _cross_view_entropy(codes.float(), log_probs)


@_in_float32
def triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.5, mining: str = "semi_hard"
) -> torch.Tensor:
    """Triplet loss on L2-normalised embeddings, with triplets mined within the batch.

    "we want to ensure that an image x_i^a (anchor) of a specific person is closer to
    all other images x_i^p (positive) of the same person than it is to any image x_i^n
    (negative) of any other person" by a margin [FaceNet]. Distances are squared
    Euclidean distances of the unit vectors (``2 - 2 cos``, in [0, 4]), as in FaceNet
    and in the Exemplar code of Kolesnikov et al. [Revisiting].

    - ``"batch_hard"``: "for each sample a in the batch, we can select the hardest
      positive and the hardest negative samples within the batch" [Hermans]; the mean
      over anchors of ``max(0, max_p d_ap - min_n d_an + margin)``.
    - ``"semi_hard"``: every anchor-positive pair takes the nearest negative farther
      than the positive, semi-hard negatives being "further away from the anchor than
      the positive exemplar" [FaceNet], or the farthest negative when there is none
      (as TensorFlow's ``triplet_semihard_loss`` does); the mean over all pairs.

    Anchors with no positive or no negative in the batch add nothing.

    - [FaceNet] Schroff, Kalenichenko & Philbin, CVPR 2015, arXiv:1503.03832.
    - [Hermans] Hermans, Beyer & Leibe, "In Defense of the Triplet Loss", arXiv:1703.07737.
    - [Revisiting] Kolesnikov, Zhai & Beyer, CVPR 2019, arXiv:1901.09005.

    Parameters
    ----------
    embeddings : Tensor of shape (N, D)
        Embeddings, normalised to unit length here.
    labels : Tensor of shape (N,)
        Integer classes; rows with equal labels are positives of one another.
    margin : float, default=0.5
    mining : {"semi_hard", "batch_hard"}, default="semi_hard"

    Returns
    -------
    Tensor
        Scalar mean loss.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [-1.0, 0.1]])
    >>> float(triplet_loss(z, torch.tensor([0, 0, 1, 1]), margin=0.5))  # far apart: no loss
    0.0
    """
    if mining not in ("batch_hard", "semi_hard"):
        raise ValueError(f"mining must be 'batch_hard' or 'semi_hard', got {mining!r}.")
    z = F.normalize(embeddings.float(), dim=1)  # (N, D)
    distance = (2 - 2 * z @ z.T).clamp(min=0)  # (N, N)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(z), dtype=torch.bool, device=z.device)  # (N, N)
    negative = ~same
    has_negative = negative.any(dim=1, keepdim=True)  # (N, 1)
    far, near = 5.0, -1.0  # beyond the [0, 4] range of distances
    if mining == "batch_hard":
        hardest_positive = distance.masked_fill(~positive, near).amax(dim=1)  # (N,)
        hardest_negative = distance.masked_fill(~negative, far).amin(dim=1)  # (N,)
        valid = positive.any(dim=1) & has_negative[:, 0]
        losses = F.relu(hardest_positive - hardest_negative + margin)
    else:
        sorted_negatives = distance.masked_fill(~negative, far).sort(dim=1).values  # (N, N)
        index = torch.searchsorted(sorted_negatives, distance.detach().contiguous(), right=True)
        semi_hard = sorted_negatives.gather(1, index.clamp(max=len(z) - 1))  # (N, N): per (a, p)
        farthest = distance.masked_fill(~negative, near).amax(dim=1, keepdim=True)  # (N, 1)
        found = index < negative.sum(dim=1, keepdim=True)
        valid = positive & has_negative
        losses = F.relu(distance - torch.where(found, semi_hard, farthest) + margin)  # (N, N)
    return torch.where(valid, losses, 0.0).sum() / valid.sum().clamp(min=1)


@_in_float32
def counting_loss(whole: torch.Tensor, tiles: torch.Tensor, other: torch.Tensor, margin: float = 10.0) -> torch.Tensor:
    """Counting's contrastive loss: the tiles' counts must add up to the whole image's.

    ``l_con(x, y) = |phi(D o x) - sum_j phi(T_j o x)|^2 + max{0, M - |phi(D o y) -
    sum_j phi(T_j o x)|^2}`` [6], with ``D`` the downsampling and ``T_j`` the tiles; the
    second term, with another image ``y``, rules out the trivial ``phi = 0``.

    - [6] Counting, Noroozi, Pirsiavash & Favaro, ICCV 2017, arXiv:1708.06734.

    Parameters
    ----------
    whole : Tensor of shape (B, D)
        Counts ``phi(D x)`` of the downsampled images.
    tiles : Tensor of shape (B, T, D)
        Counts ``phi(T_j x)`` of their ``T`` tiles.
    other : Tensor of shape (B, D)
        Counts ``phi(D y)`` of other downsampled images, row ``i`` not from image ``i``.
    margin : float, default=10.0
        ``M``, the squared distance below which ``y`` is pushed away.

    Returns
    -------
    Tensor
        Scalar mean over the batch.

    Examples
    --------
    >>> import torch
    >>> tiles = torch.ones(2, 4, 3)  # each image's tiles count one of everything
    >>> float(counting_loss(4 * torch.ones(2, 3), tiles, torch.zeros(2, 3), margin=10.0))
    0.0
    """
    total = tiles.float().sum(dim=1)  # (B, D)
    agree = (whole.float() - total).pow(2).sum(dim=1)  # (B,)
    apart = (other.float() - total).pow(2).sum(dim=1)  # (B,)
    return (agree + F.relu(margin - apart)).mean()


@_in_float32
def rebalanced_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy against target distributions, each position weighted by its class.

    The colorization loss of Zhang et al. [7]: "L_cl(Ẑ, Z) = −Σ_{h,w} v(Z_h,w) Σ_q
    Z_h,w,q log(Ẑ_h,w,q)", where the weight ``v(Z_h,w) = w_q*`` belongs to the target's
    most likely class ``q* = argmax_q Z_h,w,q``. Averaged over positions here.

    - [7] Colorization, Zhang, Isola & Efros, ECCV 2016, arXiv:1603.08511.

    Parameters
    ----------
    logits : Tensor of shape (B, Q, ...)
        Unnormalised scores of the ``Q`` classes at every position.
    targets : Tensor of shape (B, Q, ...)
        Target distributions (one-hot or soft), summing to 1 over the classes.
    class_weights : Tensor of shape (Q,), default=None
        The weight of each class; None weighs every position by 1.

    Returns
    -------
    Tensor
        Scalar mean over the batch and positions.

    Examples
    --------
    >>> import torch
    >>> logits = torch.tensor([[0.0, 0.0]])  # both classes equally likely
    >>> targets = torch.tensor([[0.0, 1.0]])
    >>> round(float(rebalanced_cross_entropy(logits, targets, torch.tensor([1.0, 2.0]))), 4)
    1.3863
    """
    per_position = -(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(dim=1)  # (B, ...)
    if class_weights is not None:
        per_position = per_position * class_weights.float()[targets.argmax(dim=1)]
    return per_position.mean()


@_in_float32
def cpc_info_nce(predictions: torch.Tensor, codes: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """InfoNCE of CPC: each prediction must pick its own code among all the codes.

    Scores are CPC's log-bilinear ``f_k = exp(z^T W_k c)`` [CPC]: plain dot products of
    the predictions ``W_k c`` with the codes ``z``, no normalisation, no temperature.
    "The negative samples are taken from other locations in the image and other
    images in the mini-batch" [CPCv2]: every code but the positive one.

    - [CPC] van den Oord, Li & Vinyals, 2018, arXiv:1807.03748.
    - [CPCv2] CPC v2, Hénaff et al., ICML 2020, arXiv:1905.09272.

    Parameters
    ----------
    predictions : Tensor of shape (N, D)
        Predicted codes.
    codes : Tensor of shape (M, D)
        Every candidate code.
    positive : Tensor of shape (N,), long
        Row of ``codes`` that each prediction should pick.

    Returns
    -------
    Tensor
        Scalar mean of ``-log softmax(predictions @ codes.T)[i, positive[i]]``.

    Examples
    --------
    >>> import torch
    >>> z = 10 * torch.eye(3)
    >>> float(cpc_info_nce(z, z, torch.arange(3))) < 1e-3
    True
    """
    logits = predictions.float() @ codes.float().T  # (N, M)
    return F.cross_entropy(logits, positive)
