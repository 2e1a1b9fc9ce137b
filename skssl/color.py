"""CIE Lab colour space and the quantized ab output space of colorization.

Batched conversions between sRGB (D65 white) and CIE L*a*b* on ``(B, 3, H, W)``
tensors, and the colour classes of Zhang et al.: the ab plane cut into 10 x 10 bins,
of which only those that sRGB colours reach are kept, soft-encoded targets and the
class-rebalancing weights that make rare colours count.

- [0] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511.
- [1] IEC 61966-2-1:1999 (sRGB) and CIE 15:2004 (the L*a*b* formulas).

Examples
--------
>>> import torch
>>> from skssl.color import lab_to_rgb, rgb_to_lab
>>> rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)  # pure red
>>> [round(v) for v in rgb_to_lab(rgb).flatten().tolist()]
[53, 80, 67]
>>> torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4)
True
"""

import functools
import math

import torch

# sRGB primaries with the D65 white point [1]: linear RGB -> XYZ
RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
D65 = (0.95047, 1.0, 1.08883)  # reference white, XYZ with Y = 1
_DELTA = 6 / 29  # the CIE f(t) switches from the cube root to a line at t = DELTA**3

AB_BIN = 10.0  # ab grid spacing in [0]: "we quantize the ab output space into bins with grid size 10"
AB_LIMIT = 110.0  # |a|, |b| of every sRGB colour is below this
_LATTICE = round(2 * AB_LIMIT / AB_BIN) + 1  # bin centres per axis of the full ab grid


def _float32(function):
    """Run a conversion in float32 with autocast off (bfloat16 would shift colours)."""

    @functools.wraps(function)
    def wrapper(x, *args, **kwargs):
        with torch.autocast(x.device.type, enabled=False):
            return function(x.float(), *args, **kwargs)

    return wrapper


def _matrix(values, like):
    return torch.tensor(values, dtype=like.dtype, device=like.device)


@_float32
def rgb_to_lab(rgb):
    """sRGB in [0, 1] to CIE Lab: L in [0, 100], a and b within about [-110, 110].

    Parameters
    ----------
    rgb : Tensor of shape (B, 3, H, W)
        sRGB values in [0, 1] (gamma-encoded, as stored in image files).

    Returns
    -------
    lab : Tensor of shape (B, 3, H, W), float32
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb_to_lab takes (B, 3, H, W) RGB batches, got shape {tuple(rgb.shape)}.")
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,bjhw->bihw", _matrix(RGB_TO_XYZ, rgb), linear)  # (B, 3, H, W)
    xyz = xyz / _matrix(D65, rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > _DELTA**3, xyz.clamp(min=_DELTA**3) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    fx, fy, fz = f.unbind(dim=1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


@_float32
def lab_to_rgb(lab):
    """CIE Lab to sRGB, the inverse of :func:`rgb_to_lab`; out-of-gamut values are clipped to [0, 1].

    Parameters
    ----------
    lab : Tensor of shape (B, 3, H, W)

    Returns
    -------
    rgb : Tensor of shape (B, 3, H, W), float32 in [0, 1]
    """
    lightness, a, b = lab.unbind(dim=1)
    fy = (lightness + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=1)  # (B, 3, H, W)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29))
    xyz = xyz * _matrix(D65, lab).view(1, 3, 1, 1)
    linear = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_matrix(RGB_TO_XYZ, lab)), xyz)
    linear = linear.clamp(0, 1)
    return torch.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055).clamp(0, 1)


def _rgb_cube_samples(face_levels=257, inner_levels=33):
    """Points of the RGB cube, dense on its six faces (where the gamut's edge lies)."""
    face = torch.linspace(0, 1, face_levels)
    u, v = (t.flatten() for t in torch.meshgrid(face, face, indexing="ij"))
    points = []
    for axis in range(3):
        for value in (0.0, 1.0):
            columns = [u, v]
            columns.insert(axis, torch.full_like(u, value))
            points.append(torch.stack(columns))
    inner = torch.linspace(0, 1, inner_levels)
    points.append(torch.cartesian_prod(inner, inner, inner).T)
    return torch.cat(points, dim=1)  # (3, N)


@functools.lru_cache(maxsize=1)
def _gamut():
    """Centres ``(Q, 2)`` of the ab bins that some sRGB colour falls in.

    The colours tried lie on a 257 x 257 grid on each face of the RGB cube plus a 33^3
    lattice inside; sampling the faces four times more densely finds no further bin.
    """
    ab = rgb_to_lab(_rgb_cube_samples().reshape(1, 3, -1, 1))[0, 1:, :, 0]  # (2, N)
    side = round(2 * AB_LIMIT / AB_BIN) + 1  # cells per axis of the full grid
    cells = torch.round((ab + AB_LIMIT) / AB_BIN).long()  # (2, N)
    occupied = torch.zeros(side * side, dtype=torch.bool)
    occupied[cells[0] * side + cells[1]] = True
    grid = torch.arange(side, dtype=torch.float32) * AB_BIN - AB_LIMIT
    return torch.cartesian_prod(grid, grid)[occupied]  # a-major, like the cell index


def ab_bins():
    """Centres ``(Q, 2)`` of the in-gamut ab bins, in ab units.

    [0] keeps "the Q = 313 values which are in-gamut"; here a bin is kept when an
    sRGB colour falls in it, which leaves Q = 262.

    Examples
    --------
    >>> from skssl.color import ab_bins
    >>> ab_bins().shape[1], bool((ab_bins() % 10 == 0).all())
    (2, True)
    """
    return _gamut().clone()


@functools.lru_cache(maxsize=8)
def _candidates(k):
    """For every square of the ab lattice, the bins that can be among the ``k`` nearest
    to a point inside it: indices ``(S, M)`` padded with -1, ``S`` squares a-major.

    The ``k``-th nearest distance is 1-Lipschitz, so anywhere in a square it is at most
    its value at the square's centre plus half the square's diagonal; a bin farther
    than that from the whole square is never among the ``k`` nearest. About 32 of the
    262 bins remain for ``k=5``.
    """
    centres = _gamut()
    corners = torch.arange(_LATTICE - 1, dtype=torch.float32) * AB_BIN - AB_LIMIT
    low = torch.cartesian_prod(corners, corners)  # (S, 2) lower corner of every square
    reach = torch.cdist(low + AB_BIN / 2, centres).kthvalue(k, dim=1).values + AB_BIN / math.sqrt(2)
    gap = torch.maximum(low[:, None] - centres, centres - (low[:, None] + AB_BIN)).clamp(min=0).norm(dim=2)
    near = gap <= reach[:, None] + 1e-3  # (S, Q), with a margin for rounding
    first = torch.sort((~near).to(torch.uint8), dim=1, stable=True).indices[:, : int(near.sum(1).max())]
    return torch.where(near.gather(1, first), first, -1)


def _nearest_bins(points, k=1):
    """Distances and indices ``(N, k)`` of the ``k`` in-gamut bins nearest to each of
    ``points`` ``(N, 2)``, exactly as over all bins, from each point's lattice square's
    candidates (:func:`_candidates`). Points beyond ``AB_LIMIT`` (no sRGB colour is)
    are first clamped onto the lattice."""
    centres = _gamut().to(points.device)
    candidates = _candidates(k).to(points.device)
    points = points.clamp(-AB_LIMIT, AB_LIMIT)
    square = ((points + AB_LIMIT) / AB_BIN).floor().long().clamp(0, _LATTICE - 2)  # (N, 2)
    index = candidates[square[:, 0] * (_LATTICE - 1) + square[:, 1]]  # (N, M)
    distance = (points[:, None] - centres[index.clamp(min=0)]).norm(dim=2).masked_fill(index < 0, math.inf)
    nearest, position = distance.topk(k, dim=1, largest=False)
    return nearest, index.gather(1, position)


def quantize_ab(ab):
    """Index of the nearest in-gamut ab bin at every position: hard encoding.

    ab values beyond ±``AB_LIMIT`` (110; no sRGB colour reaches it) are clamped to it.

    Parameters
    ----------
    ab : Tensor of shape (B, 2, H, W)

    Returns
    -------
    Tensor of shape (B, H, W), int64, in ``[0, Q)``
    """
    n, _, height, width = ab.shape
    points = ab.float().permute(0, 2, 3, 1).reshape(-1, 2)  # (B*H*W, 2)
    return _nearest_bins(points)[1].view(n, height, width)


def encode_ab(ab, *, soft=True, n_neighbors=5, sigma=5.0):
    """Target distribution over the ab bins for every position.

    Soft encoding [0]: "we find the 5-nearest neighbors to y_hw in the output space and
    weight them proportionally to their distance from the ground truth using a Gaussian
    kernel with sigma = 5". Hard encoding: a one-hot vector on the nearest bin. ab values
    beyond ±``AB_LIMIT`` (110; no sRGB colour reaches it) are clamped to it.

    Parameters
    ----------
    ab : Tensor of shape (B, 2, H, W)
    soft : bool, default=True
    n_neighbors : int, default=5
    sigma : float, default=5.0
        Kernel width, in ab units.

    Returns
    -------
    Tensor of shape (B, Q, H, W), float32, summing to 1 over the bins
    """
    return densify(*sparse_encode_ab(ab, soft=soft, n_neighbors=n_neighbors, sigma=sigma))


def sparse_encode_ab(ab, *, soft=True, n_neighbors=5, sigma=5.0):
    """:func:`encode_ab` as the bins that carry weight: ``(index, weight)``, each
    ``(B, K, H, W)`` with ``K = n_neighbors`` (1 for hard encoding), the nearest bin first.

    Examples
    --------
    >>> import torch
    >>> index, weight = sparse_encode_ab(torch.zeros(1, 2, 1, 1))  # grey: bin (0, 0)
    >>> bool(ab_bins()[index[0, 0, 0, 0]].eq(0).all()), round(float(weight.sum()), 4)
    (True, 1.0)
    """
    n, _, height, width = ab.shape
    points = ab.float().permute(0, 2, 3, 1).reshape(-1, 2)  # (B*H*W, 2)
    distance, index = _nearest_bins(points, n_neighbors if soft else 1)  # ascending distance
    if soft:
        weight = torch.softmax(-(distance**2) / (2 * sigma**2), dim=1)  # Gaussian, normalised
    else:
        weight = torch.ones_like(distance)
    return tuple(t.view(n, height, width, -1).permute(0, 3, 1, 2) for t in (index, weight))


def densify(index, weight):
    """Distributions ``(B, Q, H, W)`` over the ab bins from :func:`sparse_encode_ab`'s output."""
    n, _, height, width = index.shape
    dense = torch.zeros(n, len(_gamut()), height, width, device=index.device)
    return dense.scatter_(1, index, weight.float())


def rebalancing_weights(counts, *, lam=0.5, sigma=5.0):
    """Class-rebalancing weights of [0] from counts of the hard-encoded training colours.

    "w ∝ ((1 − λ) p̃ + λ/Q)^−1, E[w] = Σ_q p̃_q w_q = 1" [0], where p̃ is the empirical
    colour distribution smoothed by a Gaussian kernel and λ mixes it with a uniform one.
    The smoothing spreads each bin's probability over the bins in proportion to
    ``exp(-d^2 / (2 sigma^2))``, ``d`` the distance between bin centres.

    Parameters
    ----------
    counts : Tensor of shape (Q,)
        How often each bin is the nearest one in the training targets.
    lam : float, default=0.5
        Weight ``λ`` of the uniform distribution (0: fully rebalance, 1: no rebalancing).
    sigma : float, default=5.0
        Width of the smoothing kernel, in ab units.

    Returns
    -------
    Tensor of shape (Q,), float32

    Examples
    --------
    >>> import torch
    >>> from skssl.color import ab_bins, rebalancing_weights
    >>> counts = torch.zeros(len(ab_bins()))
    >>> counts[:2] = torch.tensor([90.0, 10.0])  # a common and a rare colour
    >>> weights = rebalancing_weights(counts)
    >>> bool(weights[1] > weights[0])
    True
    """
    centres = _gamut().to(counts.device).double()
    prior = counts.double() / counts.sum().clamp(min=1)
    kernel = torch.exp(-(torch.cdist(centres, centres) ** 2) / (2 * sigma**2))  # (Q, Q)
    smoothed = kernel @ (prior / kernel.sum(dim=0))  # every bin's mass is spread, not created
    weights = 1.0 / ((1 - lam) * smoothed + lam / len(centres))
    return (weights / (smoothed * weights).sum()).float()


def quantize_unit(values, n_bins):
    """Bin index of values in [0, 1] on ``n_bins`` equal bins (split-brain's L classes).

    Examples
    --------
    >>> import torch
    >>> quantize_unit(torch.tensor([0.0, 0.49, 0.5, 1.0]), 2).tolist()
    [0, 0, 1, 1]
    """
    return (values.float() * n_bins).floor().long().clamp(0, n_bins - 1)


__all__ = [
    "ab_bins",
    "densify",
    "encode_ab",
    "lab_to_rgb",
    "quantize_ab",
    "quantize_unit",
    "rebalancing_weights",
    "rgb_to_lab",
    "sparse_encode_ab",
]
