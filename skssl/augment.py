"""Batched image augmentations with per-sample random parameters.

Every random function takes a batch ``x`` of shape ``(B, C, H, W)`` with values in
[0, 1] and a :class:`torch.Generator` on the batch's device, and returns a new batch: the
random draws are one tensor per batch, never a Python loop over images, so the
augmentations run wherever the model runs and are reproducible from the generator's
seed.

Examples
--------
>>> import torch
>>> from skssl import augment
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.rand(4, 3, 16, 16)
>>> augment.random_resized_crop(x, g, scale=(0.5, 1.0)).shape
torch.Size([4, 3, 16, 16])
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` (B, C, H, W) resized (bilinear) to ``size`` ``(h, w)``; ``x`` itself when
    it already has that size.

    Examples
    --------
    >>> resize(torch.zeros(2, 1, 8, 8), (16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    rows = _resize_matrix(x.shape[-2], size[0], x.device)
    columns = _resize_matrix(x.shape[-1], size[1], x.device)
    return (rows @ x @ columns.T).to(x.dtype)  # as F.interpolate(mode="bilinear"), 3-5x faster


@functools.lru_cache(maxsize=32)
def _resize_matrix(n_in, n_out, device):
    """``(n_out, n_in)`` weights of ``F.interpolate(mode="bilinear", align_corners=False)``
    along one axis: output ``j`` reads input ``(j + 0.5) n_in / n_out - 0.5``, clamped."""
    source = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=n_in - 1)
    high = (low + 1).clamp(max=n_in - 1)
    fraction = source - low
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix.index_put_((torch.arange(n_out), low), 1 - fraction, accumulate=True)
    matrix.index_put_((torch.arange(n_out), high), fraction, accumulate=True)
    return matrix.float().to(device)


def _uniform(generator, n, low, high):
    """(n,) uniform draws in [low, high) on the generator's device."""
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def _bernoulli(generator, n, p):
    return torch.rand(n, generator=generator, device=generator.device) < p


def _interpolation_matrix(size, scale, offset, *, zeros_outside=False):
    """(B, size, size) bilinear weights: output pixel ``j`` of each image samples the input
    at the normalised coordinate ``scale * t_j + offset``, ``t_j`` the pixel centres in
    [-1, 1] (as ``grid_sample`` with ``align_corners=False``), clamped to the image, or,
    with ``zeros_outside``, reading zeros beyond it (``padding_mode="zeros"``)."""
    centres = (2 * torch.arange(size, device=scale.device) + 1) / size - 1  # (size,)
    source = ((scale[:, None] * centres + offset[:, None] + 1) * size - 1) / 2  # (B, size) pixels
    if not zeros_outside:
        source = source.clamp_(0, size - 1)
    distance = (source[:, :, None] - torch.arange(size, device=scale.device)).abs_()
    return (1 - distance).clamp_(min=0)  # the hat kernel: weights of the two nearest pixels


def _separable_sample(x, row_weights, col_weights):
    """Each image ``x[b]`` (C, H, W) as ``row_weights[b] @ x[b] @ col_weights[b]^T``."""
    n, channels, rows, cols = x.shape
    row_weights, col_weights = row_weights.to(x.dtype), col_weights.to(x.dtype)
    out = torch.bmm(x.reshape(n, channels * rows, cols), col_weights.transpose(1, 2))  # (B, C*H, W)
    if channels == 1:
        out = torch.bmm(row_weights, out).view(n, 1, rows, cols)
    else:  # the rows of all channels side by side, (B, H, C*W), for one product
        out = out.view(n, channels, rows, cols).transpose(1, 2).reshape(n, rows, channels * cols)
        out = torch.bmm(row_weights, out).view(n, rows, channels, cols).transpose(1, 2).contiguous()
    return out.to(x.dtype)  # bmm gives bfloat16 under CUDA autocast


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: float = 0.0,
) -> torch.Tensor:
    """Crop a random area fraction ``scale`` with aspect ``ratio``, resize back, maybe flip.

    The crop, the bilinear resize and the horizontal flip (probability ``flip``) are
    separable: each image becomes ``Ry @ x @ Rx^T`` with its own row and column
    interpolation matrices (a flip reverses the rows of ``Rx``), two batched matrix
    products over the whole batch. The result is the bilinear sampling of
    ``grid_sample(align_corners=False)`` on the same boxes, at 2-3x less CPU time.
    """
    n, channels, rows, cols = x.shape
    area = _uniform(generator, n, *scale)
    log_ratio = _uniform(generator, n, math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (1 - width) * _uniform(generator, n, -1.0, 1.0)  # normalised coords
    centre_y = (1 - height) * _uniform(generator, n, -1.0, 1.0)
    mirror = 1.0 - 2.0 * _bernoulli(generator, n, flip).to(width.dtype)
    row_weights = _interpolation_matrix(rows, height, centre_y)  # (B, H, H)
    col_weights = _interpolation_matrix(cols, width * mirror, centre_x)  # (B, W, W)
    return _separable_sample(x, row_weights, col_weights)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    shift: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    rotation: float = 15.0,
) -> torch.Tensor:
    """Shift, zoom and turn each image a little: up to ``shift`` of its side, by a zoom
    in ``scale`` and by up to ``rotation`` degrees either way (zeros beyond the border)."""
    n = x.shape[0]
    zoom = torch.exp(_uniform(generator, n, math.log(scale[0]), math.log(scale[1])))
    angle = _uniform(generator, n, -rotation, rotation) * (math.pi / 180)
    offset = 2 * shift * torch.stack([_uniform(generator, n, -1.0, 1.0), _uniform(generator, n, -1.0, 1.0)], 1)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def cutout(
    x: torch.Tensor, generator: torch.Generator, *, size: tuple[float, float] = (0.25, 0.5), fill: float = 0.5
) -> torch.Tensor:
    """Paint one square of each image, of side ``size`` (a fraction of the shorter
    side, drawn per image) at a random place, with ``fill`` (DeVries & Taylor, 2017)."""
    n, _, height, width = x.shape
    side = _uniform(generator, n, *size) * min(height, width)  # (B,) pixels
    top = _uniform(generator, n, 0.0, 1.0) * (height - side)
    left = _uniform(generator, n, 0.0, 1.0) * (width - side)
    rows = torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device)
    inside_rows = (rows >= top[:, None]) & (rows < (top + side)[:, None])  # (B, H)
    inside_cols = (cols >= left[:, None]) & (cols < (left + side)[:, None])  # (B, W)
    box = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]  # (B, 1, H, W)
    return torch.where(box, torch.full_like(x, fill), x)


def random_shift_scale(
    x: torch.Tensor, generator: torch.Generator, *, shift: float = 0.1, scale: tuple[float, float] = (0.9, 1.1)
) -> torch.Tensor:
    """Move each image by up to ``shift`` of its side and zoom it by a factor in ``scale``.

    The label-preserving augmentation of fine-tuning: small shifts and zooms keep a
    digit the digit it was (flips and quarter turns would make a 6 a 9). Pixels that
    come in from beyond the border are black (zero), as when a digit is padded and
    cropped. Both axes get the same zoom, so the aspect is kept; like
    :func:`random_resized_crop` it is two batched matrix products.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(2, 1, 8, 8)
    >>> x[:, :, 3:5, 3:5] = 1.0
    >>> moved = random_shift_scale(x, torch.Generator().manual_seed(0), shift=0.25, scale=(1, 1))
    >>> moved.shape, bool(moved.sum() > 0), bool((moved != x).any())
    (torch.Size([2, 1, 8, 8]), True, True)
    """
    n, _, rows, cols = x.shape
    zoom = torch.exp(_uniform(generator, n, math.log(scale[0]), math.log(scale[1])))
    offset_y = 2 * shift * _uniform(generator, n, -1.0, 1.0)  # normalised coords span 2
    offset_x = 2 * shift * _uniform(generator, n, -1.0, 1.0)
    row_weights = _interpolation_matrix(rows, 1 / zoom, offset_y, zeros_outside=True)
    col_weights = _interpolation_matrix(cols, 1 / zoom, offset_x, zeros_outside=True)
    return _separable_sample(x, row_weights, col_weights)


def random_symmetry(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image turned by a random one of the square's 8 symmetries (flips, quarter turns).

    Three fair coins per image: transpose (square images only), mirror left-right,
    mirror top-bottom; together they give each of the 8 with probability 1/8.
    Non-square images keep their shape and get one of the 4 flips.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(4.0).view(1, 1, 2, 2).expand(64, 1, 2, 2)
    >>> turned = random_symmetry(x, torch.Generator().manual_seed(0))
    >>> len({tuple(image.flatten().tolist()) for image in turned})  # all 8 seen
    8
    """
    coins = torch.rand(3, len(x), 1, 1, 1, generator=generator, device=generator.device) < 0.5
    if x.shape[2] == x.shape[3]:
        x = torch.where(coins[0], x.transpose(2, 3), x)
    x = torch.where(coins[1], x.flip(3), x)
    return torch.where(coins[2], x.flip(2), x)


def _luminance(x):
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def color_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> torch.Tensor:
    """Per-image random brightness, contrast, saturation and hue, with probability ``p``.

    Factors are drawn from ``[1 - s, 1 + s]`` (hue: a rotation of the chroma plane by
    up to ``hue`` of a turn). Saturation and hue act only on 3-channel images.
    """
    n = x.shape[0]
    apply = _bernoulli(generator, n, p).view(n, 1, 1, 1)
    shape = (n, 1, 1, 1)
    out = x * _uniform(generator, n, 1 - brightness, 1 + brightness).view(shape)
    mean = _luminance(out).mean(dim=(2, 3), keepdim=True)
    out = mean + (out - mean) * _uniform(generator, n, 1 - contrast, 1 + contrast).view(shape)
    if x.shape[1] == 3:
        grey = _luminance(out)
        out = grey + (out - grey) * _uniform(generator, n, 1 - saturation, 1 + saturation).view(shape)
        out = _rotate_hue(out, _uniform(generator, n, -hue, hue) * 2 * math.pi)
    return torch.where(apply, out.clamp(0, 1), x)


def _rotate_hue(x, angle):
    """Rotate each RGB image's chroma in YIQ space by ``angle`` radians (B,)."""
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)


def random_grayscale(x: torch.Tensor, generator: torch.Generator, *, p: float = 0.2) -> torch.Tensor:
    """Replace each RGB image by its luminance with probability ``p``."""
    if x.shape[1] != 3:
        return x
    apply = _bernoulli(generator, x.shape[0], p).view(-1, 1, 1, 1)
    return torch.where(apply, _luminance(x).expand_as(x), x)


def gaussian_blur(
    x: torch.Tensor, generator: torch.Generator, *, sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5
) -> torch.Tensor:
    """Blur each image with probability ``p`` by a Gaussian of random ``sigma`` (pixels).

    The kernel spans about a tenth of the image side, as in SimCLR; blurring is one
    grouped separable convolution over the whole batch.
    """
    n, channels, height, width = x.shape
    size = max(3, (min(height, width) // 10) | 1)
    sigmas = _uniform(generator, n, *sigma).view(n, 1)
    offsets = torch.arange(size, device=x.device, dtype=x.dtype) - size // 2
    kernel = torch.exp(-0.5 * (offsets / sigmas) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
    flat = x.reshape(1, n * channels, height, width)
    pad = size // 2
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="replicate"), kernel.view(-1, 1, size, 1), groups=n * channels)
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="replicate"), kernel.view(-1, 1, 1, size), groups=n * channels)
    apply = _bernoulli(generator, n, p).view(n, 1, 1, 1)
    return torch.where(apply, flat.view_as(x), x)


def gaussian_noise(x: torch.Tensor, generator: torch.Generator, *, std: float = 0.3) -> torch.Tensor:
    """Add N(0, std^2) noise to every pixel (values may leave [0, 1])."""
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def mask_pixels(x: torch.Tensor, generator: torch.Generator, *, fraction: float = 0.3) -> torch.Tensor:
    """Set a random ``fraction`` of the pixels to 0 (all channels of a pixel together)."""
    n, _, height, width = x.shape
    keep = torch.rand((n, 1, height, width), generator=generator, device=x.device) >= fraction
    return x * keep


def salt_pepper(x: torch.Tensor, generator: torch.Generator, *, fraction: float = 0.3) -> torch.Tensor:
    """Set a random ``fraction`` of the pixels to 0 or 1, half each."""
    n, _, height, width = x.shape
    draw = torch.rand((n, 1, height, width), generator=generator, device=x.device)
    out = torch.where(draw < fraction / 2, torch.zeros_like(x), x)
    return torch.where((draw >= fraction / 2) & (draw < fraction), torch.ones_like(x), out)


def _block_side(size, area):
    """Side in pixels of a block covering ``area`` of a square image: at least 1, at most ``size``."""
    return min(size, max(1, round(size * math.sqrt(area))))


def _boxes_to_mask(top, left, height, width, shape, device):
    """(B, 1, H, W) boolean mask, True inside any of the boxes with corners ``top``, ``left`` (B, K)."""
    rows = torch.arange(shape[2], device=device)
    cols = torch.arange(shape[3], device=device)
    in_rows = (rows >= top[..., None]) & (rows < top[..., None] + height)  # (B, K, H)
    in_cols = (cols >= left[..., None]) & (cols < left[..., None] + width)  # (B, K, W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1, keepdim=True)  # (B, 1, H, W)


def center_mask(x: torch.Tensor, *, area: float = 0.25) -> torch.Tensor:
    """Boolean mask ``(B, 1, H, W)``, True on the central rectangle covering ``area`` of the image.

    Each side of the rectangle is ``sqrt(area)`` of the image's side, rounded to whole
    pixels (at least one), so ``area=0.25`` hides the central half-by-half region.
    """
    n, _, height, width = x.shape
    block_height, block_width = _block_side(height, area), _block_side(width, area)
    top = torch.full((n, 1), (height - block_height) // 2, device=x.device)
    left = torch.full((n, 1), (width - block_width) // 2, device=x.device)
    return _boxes_to_mask(top, left, block_height, block_width, x.shape, x.device)


def random_block_mask(
    x: torch.Tensor, generator: torch.Generator, *, area: float = 0.25, n_blocks: int = 4
) -> torch.Tensor:
    """Boolean mask ``(B, 1, H, W)``, True on ``n_blocks`` rectangles at random places per image.

    Each block covers ``area / n_blocks`` of the image (sides rounded to whole pixels, at
    least one); blocks may overlap, so at most ``area`` is masked.
    """
    n, _, height, width = x.shape
    block_height = _block_side(height, area / n_blocks)
    block_width = _block_side(width, area / n_blocks)
    size = (n, n_blocks)
    top = torch.randint(0, height - block_height + 1, size, generator=generator, device=x.device)
    left = torch.randint(0, width - block_width + 1, size, generator=generator, device=x.device)
    return _boxes_to_mask(top, left, block_height, block_width, x.shape, x.device)
