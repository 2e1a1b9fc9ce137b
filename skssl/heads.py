"""Heads that several methods put on the backbone's features.

- [0] Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning
  of Visual Representations" (SimCLR), ICML 2020, arXiv:2002.05709.
"""

from torch import nn


def projection_head(n_features, n_hidden, n_out):
    """The MLP ``g`` of [0]: "a MLP with one hidden layer" between features and loss.

    Examples
    --------
    >>> import torch
    >>> projection_head(64, 512, 128)(torch.zeros(2, 64)).shape
    torch.Size([2, 128])
    """
    return nn.Sequential(
        nn.Linear(n_features, n_hidden),
        nn.BatchNorm1d(n_hidden),
        nn.ReLU(inplace=True),
        nn.Linear(n_hidden, n_out),
    )


def mlp_decoder(n_features, in_shape, n_hidden=512):
    """An MLP from ``n_features`` features to a flat ``in_shape`` image in [0, 1]:
    ``(N, n_features) -> (N, C*H*W)``.

    Examples
    --------
    >>> import torch
    >>> mlp_decoder(64, (1, 8, 8))(torch.zeros(2, 64)).shape
    torch.Size([2, 64])
    """
    channels, height, width = in_shape
    return nn.Sequential(
        nn.Linear(n_features, n_hidden),
        nn.ReLU(inplace=True),
        nn.Linear(n_hidden, channels * height * width),
        nn.Sigmoid(),  # clean images live in [0, 1]
    )
