"""Losses shared by several methods.

- [0] SimCLR, Chen et al., ICML 2020, arXiv:2002.05709.
"""

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
