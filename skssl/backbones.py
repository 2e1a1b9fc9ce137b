"""Backbones: networks cut into named stages.

Every backbone is an :class:`torch.nn.Sequential` of named stages (``conv1``,
``conv2``, ... or ``stem``, ``layer1``, ...). A featurizer's ``layer`` names the stage
whose output, pooled to a vector, becomes the features; pretext heads sit on top of
whichever stage their method needs.

- ``"small_cnn"``: the classic three-conv lab network, Conv64/s2 - pool - Conv32 -
  pool - Conv16/s2, with ReLU and batch norm. Its downsampling steps are skipped on
  an axis that is already smaller than 3 pixels, so the same network runs on 8x8
  digits (2x2 maps after ``conv2``) and on 28x28 MNIST (7x7, 3x3, 2x2, as in the lab).
- ``"wide_cnn"`` (the default): the same stages with widths 32 - 64 - 128, so that
  ``conv3`` gives 512 numbers on MNIST instead of 64. Every method read at ``conv3``
  gains 1-13 points of linear-probe accuracy on MNIST from it, at about the lab
  network's step time: the narrower ``conv1`` pays for the wider later stages
  (``benchmarks/RESULTS.md``).
- ``"resnet18"``: torchvision's ResNet-18 with a small-image stem (3x3 conv, stride 1,
  no max-pool), as used for CIFAR-sized inputs in the SSL literature. GPU territory.
- ``"mlp"``: two fully connected stages, for rows that are not really images.
- ``"vit_tiny"``: a small Vision Transformer (ViT-Tiny's width: 192 dimensions in 3
  heads; 4 blocks instead of 12 by default, for CPUs), stages ``patch_embed``,
  ``block1``, ... and ``norm``. Its token sequences are laid out as ``(B, D, h, w)``
  grids, one token per patch, so that ``pool="avg"`` averages over the tokens.
- an ``nn.Module`` subclass (instantiated with ``backbone_kwargs``) or instance: an
  ``nn.Sequential`` contributes its children as stages; any other module is one
  stage named ``"output"``.
"""

import copy
import inspect
from collections import OrderedDict

import torch
from torch import nn

BACKBONES = ("small_cnn", "wide_cnn", "resnet18", "mlp", "vit_tiny")
CONV_BACKBONES = ("small_cnn", "wide_cnn")  # flattened by ``pool="auto"``, as the lab reads them


def _downsample(size, factor=2):
    """Stride for one axis: halve it unless it is already tiny."""
    return factor if size >= 3 else 1


def small_cnn(in_shape, *, widths=(64, 32, 16), batch_norm=True):
    """The classic rotation-lab network as three named conv stages.

    Parameters
    ----------
    in_shape : tuple of int
        ``(C, H, W)`` of the input images.
    widths : tuple of 3 ints, default=(64, 32, 16)
        Output channels of ``conv1``, ``conv2``, ``conv3``.
    batch_norm : bool, default=True
        Batch norm after each convolution.

    Returns
    -------
    nn.Sequential
        Stages ``conv1``, ``conv2``, ``conv3``.

    Examples
    --------
    >>> import torch
    >>> net = small_cnn((1, 28, 28))
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 16, 2, 2])
    """
    channels, height, width = in_shape
    stages = OrderedDict()
    for index, out_channels in enumerate(widths):
        # conv1 and conv3 stride 2; conv1 and conv2 are followed by a 2x2 max-pool.
        stride = (_downsample(height), _downsample(width)) if index != 1 else (1, 1)
        layers = [nn.Conv2d(channels, out_channels, 3, stride, 1, bias=not batch_norm)]
        height, width = -(-height // stride[0]), -(-width // stride[1])
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if index != 2:
            # max-pool before ReLU: the two commute, and ReLU then sees a quarter of the map
            pool = (_downsample(height), _downsample(width))
            if pool != (1, 1):
                layers.append(nn.MaxPool2d(pool, pool))
            height, width = height // pool[0], width // pool[1]
        layers.append(nn.ReLU(inplace=True))
        stages[f"conv{index + 1}"] = nn.Sequential(*layers)
        channels = out_channels
    return nn.Sequential(stages)


def wide_cnn(in_shape, *, widths=(32, 64, 128), batch_norm=True):
    """:func:`small_cnn` with a narrower first stage and wider second and third stages.

    Examples
    --------
    >>> import torch
    >>> wide_cnn((1, 28, 28))(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 128, 2, 2])
    """
    return small_cnn(in_shape, widths=widths, batch_norm=batch_norm)


def resnet18(in_shape):
    """ResNet-18 with a stem for small images (3x3 conv, stride 1, no max-pool).

    Examples
    --------
    >>> import torch
    >>> net = resnet18((3, 32, 32))
    >>> list(dict(net.named_children()))
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    """
    from torchvision.models import resnet18 as torchvision_resnet18

    net = torchvision_resnet18(num_classes=1)
    stem = nn.Sequential(
        nn.Conv2d(in_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False),
        net.bn1,
        net.relu,
    )
    return nn.Sequential(
        OrderedDict(stem=stem, layer1=net.layer1, layer2=net.layer2, layer3=net.layer3, layer4=net.layer4)
    )


def mlp(in_shape, *, hidden=(512, 256)):
    """Fully connected stages ``fc1``, ``fc2``, ... on the flattened image.

    Examples
    --------
    >>> import torch
    >>> mlp((1, 8, 8))(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 256])
    """
    stages = OrderedDict()
    n_inputs = in_shape[0] * in_shape[1] * in_shape[2]
    for index, n_units in enumerate(hidden):
        layers = [nn.Flatten()] if index == 0 else []
        layers += [nn.Linear(n_inputs, n_units), nn.BatchNorm1d(n_units), nn.ReLU(inplace=True)]
        stages[f"fc{index + 1}"] = nn.Sequential(*layers)
        n_inputs = n_units
    return nn.Sequential(stages)


def _auto_patch_size(height, width):
    """2 px up to 16 px sides (8x8 digits: 4x4 patches), 4 px up to 32 (28x28: 7x7,
    32x32: 8x8), then about 8 patches along the longer side."""
    longest = max(height, width)
    return 2 if longest <= 16 else 4 if longest <= 32 else -(-longest // 8)


def sincos_positions(dim, grid):
    """MAE's fixed 2-D sine-cosine positional embedding, ``(dim, h, w)`` for a ``grid`` ``(h, w)``.

    Half the dimensions encode the row, half the column, each as sines and cosines of
    geometrically spaced frequencies (Vaswani et al. 2017, in 2-D as in MAE).
    """
    quarter = dim // 4
    frequencies = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, columns = torch.meshgrid(
        torch.arange(grid[0], dtype=torch.float64), torch.arange(grid[1], dtype=torch.float64), indexing="ij"
    )
    parts = []
    for position in (rows, columns):
        angles = position[..., None] * frequencies  # (h, w, dim / 4)
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=-1).permute(2, 0, 1).float()  # (dim, h, w)


def grid_positions(dim, grid):
    """:func:`sincos_positions` centred over the grid and scaled to unit mean square.

    On grids of a few patches most of MAE's frequencies (made for 14 x 14 grids and
    longer sequences) hardly change across the grid, so its embedding is mostly one
    constant vector added to every token, which drowns the content of small patches.
    Centred, only what tells positions apart remains. With MAE on 1,000 digits (a
    64-dimensional 2-block ViT, 100 epochs, seeds 0-2), the loss fell below that of
    predicting the average image after ~8 epochs instead of ~27, and the linear-probe
    accuracy of the features rose from 0.69-0.71 to 0.82.
    """
    positions = sincos_positions(dim, grid)
    positions = positions - positions.mean(dim=(1, 2), keepdim=True)
    return positions / positions.pow(2).mean().sqrt().clamp(min=1e-6)  # a 1 x 1 grid: zeros


def _on_tokens(function, grid):
    """Apply a token-sequence ``function`` ``(B, N, D) -> (B, N, D)`` to a ``(B, D, h, w)`` grid."""
    batch, dim, height, width = grid.shape
    tokens = function(grid.flatten(2).transpose(1, 2))  # (B, h*w, D)
    return tokens.transpose(1, 2).reshape(batch, dim, height, width)


class PatchEmbed(nn.Module):
    """Cut (standardised) images into patches, embed each linearly, add fixed positions.

    Sides that are not a multiple of the patch size are zero-padded at the bottom and
    right (zero is the mean colour after standardisation). Returns ``(B, D, h, w)``.
    """

    def __init__(self, in_shape, patch_size, embed_dim):
        super().__init__()
        channels, height, width = in_shape
        self.in_shape = tuple(in_shape)
        self.patch_size = (min(patch_size, height), min(patch_size, width))  # a patch fits the image
        self.grid = (-(-height // self.patch_size[0]), -(-width // self.patch_size[1]))
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(channels, embed_dim, self.patch_size, stride=self.patch_size)
        self.register_buffer("positions", grid_positions(embed_dim, self.grid)[None], persistent=False)

    def pad(self, x):
        """Zero-pad ``(B, C, H, W)`` images to a whole number of patches."""
        extra_h = self.grid[0] * self.patch_size[0] - x.shape[2]
        extra_w = self.grid[1] * self.patch_size[1] - x.shape[3]
        return nn.functional.pad(x, (0, extra_w, 0, extra_h)) if extra_h or extra_w else x

    def forward(self, x):
        return self.proj(self.pad(x)) + self.positions  # (B, D, h, w)


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, D)`` tokens."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, n_tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, n_tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, D / heads)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n_tokens, dim))


class Block(nn.Module):
    """A pre-norm transformer block; ``forward`` takes ``(B, D, h, w)`` grids,
    :meth:`tokens` any ``(B, N, D)`` sequence (MAE's visible tokens)."""

    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def tokens(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def forward(self, grid):
        return _on_tokens(self.tokens, grid)


class TokenNorm(nn.LayerNorm):
    """Layer norm of every token: ``forward`` on grids, :meth:`tokens` on sequences."""

    def tokens(self, x):
        return super().forward(x)

    def forward(self, grid):
        return _on_tokens(self.tokens, grid)


def init_vit_weights(module):
    """MAE's initialisation: Xavier-uniform linear maps, zero biases.

    The patch embedding gets weights of variance 1 / (pixels per patch) instead: the
    same as Xavier for MAE's 768-pixel patches and 768-dimensional tokens, and for
    small patches it keeps content at the scale of the positions (Xavier would make
    the content of 2x2 patches ~5x weaker).
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Conv2d):
            fan_in = layer.weight[0].numel()
            nn.init.uniform_(layer.weight, -((3 / fan_in) ** 0.5), (3 / fan_in) ** 0.5)
            nn.init.zeros_(layer.bias)


def vit_tiny(in_shape, *, patch_size=None, embed_dim=192, depth=4, heads=3, mlp_ratio=4):
    """A small Vision Transformer as named stages ``patch_embed``, ``block1``, ... ``norm``.

    ViT-Tiny's width (Touvron et al. 2021: 192 dimensions, 3 heads, MLPs 4x as wide)
    with 4 blocks instead of 12, for CPUs: on 1,000 digits and one CPU thread an MAE
    epoch takes 1.3 s instead of 2.6 s, and embedding them 0.8 s instead of 2.5 s.
    No class token: features average the patch tokens (``pool="avg"``), which MAE
    found as good. Positions are fixed, not learned: MAE's 2-D sine-cosine embedding,
    centred over the grid (:func:`grid_positions`), which needs no images to learn
    from and is defined for any grid, including the ``1 x n`` rows of non-image
    tables.

    Every stage maps a ``(B, D, h, w)`` grid of tokens to another (``patch_embed``
    takes the images), so ``pool="avg"`` averages over tokens and ``"flatten"`` keeps
    their layout; :meth:`Block.tokens` runs a block on any token sequence.

    Parameters
    ----------
    in_shape : tuple of int
        ``(C, H, W)`` of the input images.
    patch_size : int, default=None
        Side of the square patches in pixels, capped at the image's sides (so
        ``1 x n`` rows get ``1 x p`` patches). None picks 2 for images up to 16
        pixels on a side, 4 up to 32 and an eighth of the longer side beyond. Sides
        that are not a multiple of it are zero-padded.
    embed_dim : int, default=192
        Token dimension; a multiple of 4 (for the positions) and of ``heads``.
    depth : int, default=4
        Transformer blocks.
    heads : int, default=3
        Attention heads per block.
    mlp_ratio : int, default=4
        Width of each block's MLP relative to ``embed_dim``.

    Returns
    -------
    nn.Sequential
        Stages ``patch_embed``, ``block1`` ... ``block{depth}``, ``norm``.

    Examples
    --------
    >>> import torch
    >>> net = vit_tiny((1, 8, 8))
    >>> list(dict(net.named_children()))
    ['patch_embed', 'block1', 'block2', 'block3', 'block4', 'norm']
    >>> net(torch.zeros(2, 1, 8, 8)).shape  # 192 dimensions on a 4 x 4 grid of 2 px patches
    torch.Size([2, 192, 4, 4])
    """
    channels, height, width = in_shape
    if patch_size is None:
        patch_size = _auto_patch_size(height, width)
    sizes = dict(patch_size=patch_size, embed_dim=embed_dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio)
    for name, value in sizes.items():
        if not hasattr(value, "__index__") or isinstance(value, bool) or value < 1:
            raise ValueError(f"vit_tiny's {name} must be a positive integer, got {value!r}.")
    patch_size, embed_dim, depth, heads, mlp_ratio = (int(value) for value in sizes.values())
    if embed_dim % 4 or embed_dim % heads:
        raise ValueError(
            f"vit_tiny's embed_dim must be a multiple of 4 and of heads={heads}, got "
            f"{embed_dim}; e.g. embed_dim={4 * heads * max(1, round(embed_dim / (4 * heads)))}."
        )
    stages = OrderedDict(patch_embed=PatchEmbed(in_shape, patch_size, embed_dim))
    for index in range(depth):
        stages[f"block{index + 1}"] = Block(embed_dim, heads, mlp_ratio)
    stages["norm"] = TokenNorm(embed_dim, eps=1e-6)
    net = nn.Sequential(stages)
    init_vit_weights(net)
    return net


def _user_stages(backbone, kwargs):
    if inspect.isclass(backbone):
        module = backbone(**kwargs)
    else:
        module = copy.deepcopy(backbone)  # the caller's module is never trained
    if isinstance(module, nn.Sequential) and len(module) > 0:
        return module
    return nn.Sequential(OrderedDict(output=module))


def build_stages(backbone, in_shape, backbone_kwargs=None):
    """Build ``backbone`` for images of ``in_shape`` ``(C, H, W)`` as named stages."""
    kwargs = dict(backbone_kwargs or {})
    if isinstance(backbone, str):
        builders = {
            "small_cnn": small_cnn,
            "wide_cnn": wide_cnn,
            "resnet18": resnet18,
            "mlp": mlp,
            "vit_tiny": vit_tiny,
        }
        if backbone not in builders:
            raise ValueError(
                f"Unknown backbone {backbone!r}; use one of {BACKBONES}, an nn.Module "
                f"subclass or an nn.Module instance."
            )
        try:
            return builders[backbone](tuple(in_shape), **kwargs)
        except TypeError as exc:
            raise TypeError(f"backbone_kwargs {kwargs} do not fit {backbone!r}: {exc}") from exc
    if isinstance(backbone, nn.Module) or (inspect.isclass(backbone) and issubclass(backbone, nn.Module)):
        return _user_stages(backbone, kwargs)
    raise TypeError(f"backbone must be one of {BACKBONES}, an nn.Module subclass or instance; got {backbone!r}.")


def pool(feature_map, how):
    """Pool a stage's output to one vector per image: ``"avg"`` or ``"flatten"``."""
    if feature_map.ndim > 2 and how == "avg":
        return feature_map.mean(dim=tuple(range(2, feature_map.ndim)))
    return feature_map.flatten(1)


class Backbone(nn.Module):
    """Named stages behind a per-channel standardisation of [0, 1] images.

    Parameters
    ----------
    stages : nn.Sequential
        Named stages, as returned by :func:`build_stages`.
    in_shape : tuple of int
        ``(C, H, W)`` of the input images.
    mean, std : sequence of float
        Per-channel statistics of the training images on the [0, 1] scale.
    """

    def __init__(self, stages, in_shape, mean, std):
        super().__init__()
        self.stages = stages
        self.in_shape = tuple(in_shape)
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(shape))

    @property
    def stage_names(self):
        return [name for name, _ in self.stages.named_children()]

    def stage_modules(self, name):
        """The modules that make up stage ``name`` (one here; one per branch for
        backbones with several sub-networks)."""
        return [self.stages.get_submodule(name)]

    def forward(self, x, upto=None):
        """Feature map of stage ``upto`` (default: the last) for images ``x`` in [0, 1]."""
        x = (x - self.mean) / self.std  # (B, C, H, W)
        for name, stage in self.stages.named_children():
            x = stage(x)
            if name == upto:
                break
        return x

    def pooled_size(self, how, upto=None):
        """Length of the pooled output of stage ``upto`` (default: the last)."""
        training = self.training
        self.eval()
        with torch.no_grad():
            probe = torch.zeros(1, *self.in_shape, device=self.mean.device)
            size = pool(self(probe, upto=upto), how).shape[1]
        self.train(training)
        return size
