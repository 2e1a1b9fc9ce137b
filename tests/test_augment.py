"""Augmentations and masks (``skssl.augment``): each augmentation for shape, range and
randomness, the separable random resized crop against slow per-image references, and
the context encoder's masks.

``augment.random_resized_crop`` resamples every image as ``Ry @ x @ Rx^T`` (two batched
matrix products) instead of an affine ``grid_sample``; its tests pin it to the
``grid_sample`` formula it replaced, image by image, and to torchvision's crop-then-resize.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from skssl import augment

# --- every augmentation ----------------------------------------------------------------


def _batch(channels=3, n=8, size=16, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


AUGMENTATIONS = [
    lambda x, g: augment.random_resized_crop(x, g, scale=(0.2, 1.0), flip=0.5),
    lambda x, g: augment.color_jitter(x, g, p=1.0),
    lambda x, g: augment.random_grayscale(x, g, p=0.5),
    lambda x, g: augment.gaussian_blur(x, g, p=1.0),
    lambda x, g: augment.mask_pixels(x, g, fraction=0.5),
    lambda x, g: augment.salt_pepper(x, g, fraction=0.5),
    augment.random_symmetry,
]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("transform", AUGMENTATIONS)
def test_augmentations_keep_shape_range_and_are_seeded(transform, channels):
    x = _batch(channels)
    before = x.clone()
    out = transform(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    torch.testing.assert_close(x, before)  # input untouched
    torch.testing.assert_close(out, transform(x, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    "transform",
    [AUGMENTATIONS[0], AUGMENTATIONS[1], AUGMENTATIONS[3], AUGMENTATIONS[4]],
)
def test_augmentations_draw_per_sample(transform):
    """The same image repeated across a batch comes out differently per sample."""
    x = _batch(3, n=1).expand(6, -1, -1, -1).contiguous()
    out = transform(x, torch.Generator().manual_seed(2))
    distinct = {tuple(np.round(out[i].flatten().numpy(), 4)) for i in range(6)}
    assert len(distinct) > 1


@pytest.mark.parametrize("size", [(6, 6), (4, 7)])
def test_random_symmetry_gives_each_image_one_of_the_squares_symmetries(size):
    x = torch.rand(200, 2, *size, generator=torch.Generator().manual_seed(0))
    out = augment.random_symmetry(x, torch.Generator().manual_seed(1))
    flips = [lambda i: i, lambda i: i.flip(2), lambda i: i.flip(1), lambda i: i.flip(1).flip(2)]
    turns = [lambda i: i, lambda i: i.transpose(1, 2)] if size[0] == size[1] else [lambda i: i]
    candidates = [lambda i, f=f, t=t: f(t(i)) for f in flips for t in turns]
    seen = set()
    for image, result in zip(x, out):
        matches = [k for k, symmetry in enumerate(candidates) if torch.equal(symmetry(image), result)]
        assert matches, "not a symmetry of its input"
        seen.add(matches[0])
    assert len(seen) == len(candidates)  # 8 for square images, the 4 flips otherwise


def test_full_crop_without_flip_is_identity():
    x = _batch(3)
    out = augment.random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_flip_is_a_mirror():
    x = _batch(1)
    out = augment.random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0)
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_color_jitter_on_grayscale_scales_brightness_and_contrast_only():
    x = _batch(1)
    out = augment.color_jitter(x, torch.Generator().manual_seed(0), brightness=0.0, contrast=0.0, p=1.0)
    torch.testing.assert_close(out, x)


def test_hue_rotation_by_full_turn_is_identity():
    x = _batch(3)
    torch.testing.assert_close(augment._rotate_hue(x, torch.full((8,), 2 * math.pi)), x, atol=1e-4, rtol=0)


def test_gaussian_blur_matches_per_image_reference():
    x = _batch(1, n=3)
    generator = torch.Generator().manual_seed(5)
    out = augment.gaussian_blur(x, generator, sigma=(1.0, 1.0), p=1.0)
    size = max(3, (16 // 10) | 1)
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    kernel = torch.exp(-0.5 * offsets**2)
    kernel = kernel / kernel.sum()
    for i in range(3):
        image = F.pad(x[i : i + 1], (1, 1, 1, 1), mode="replicate")
        expected = F.conv2d(image, (kernel[:, None] * kernel[None, :]).view(1, 1, size, size))
        torch.testing.assert_close(out[i : i + 1], expected, atol=1e-5, rtol=0)


def test_noise_levels():
    x = torch.full((4, 1, 32, 32), 0.5)
    generator = torch.Generator().manual_seed(0)
    assert float((augment.mask_pixels(x, generator, fraction=0.3) == 0).float().mean()) == pytest.approx(0.3, abs=0.03)
    corrupted = augment.salt_pepper(x, generator, fraction=0.3)
    assert float((corrupted != 0.5).float().mean()) == pytest.approx(0.3, abs=0.03)
    assert float((augment.gaussian_noise(x, generator, std=0.2) - x).std()) == pytest.approx(0.2, abs=0.02)


@pytest.mark.parametrize(
    "shape, size",
    [
        ((28, 28), (33, 33)),
        ((8, 8), (16, 16)),
        ((6, 10), (12, 20)),
        ((28, 28), (14, 14)),
        ((1, 64), (27, 64)),
        ((33, 20), (7, 9)),
    ],
)
def test_resize_is_bilinear_interpolation(shape, size):
    x = torch.rand(4, 3, *shape, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(augment.resize(x, size), expected, atol=1e-5, rtol=0)
    assert augment.resize(x, shape) is x


# --- the separable random resized crop ----------------------------------------------------


def _draw_boxes(generator, n, scale, ratio, flip):
    """The crop's random draws, in the crop's order: one (n,) tensor each."""
    draws = [torch.rand(n, generator=generator) for _ in range(5)]
    area = scale[0] + (scale[1] - scale[0]) * draws[0]
    log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * draws[1]
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (1 - width) * (-1 + 2 * draws[2])
    centre_y = (1 - height) * (-1 + 2 * draws[3])
    mirror = torch.where(draws[4] < flip, -1.0, 1.0)
    return width, height, centre_x, centre_y, mirror


def grid_sample_reference(x, seed, scale, ratio, flip):
    """The former implementation, one image at a time: an affine grid and ``grid_sample``."""
    boxes = _draw_boxes(torch.Generator().manual_seed(seed), len(x), scale, ratio, flip)
    out = []
    for i, image in enumerate(x):
        width, height, centre_x, centre_y, mirror = (float(b[i]) for b in boxes)
        theta = torch.tensor([[[width * mirror, 0.0, centre_x], [0.0, height, centre_y]]], dtype=x.dtype)
        grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
        out.append(F.grid_sample(image[None], grid, padding_mode="reflection", align_corners=False)[0])
    return torch.stack(out)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (12, 20), (1, 7)])
@pytest.mark.parametrize("flip", [0.0, 0.5])
def test_crop_matches_grid_sample_per_image(channels, shape, flip):
    x = torch.rand(16, channels, *shape, generator=torch.Generator().manual_seed(0))
    kwargs = dict(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip=flip)
    out = augment.random_resized_crop(x, torch.Generator().manual_seed(3), **kwargs)
    torch.testing.assert_close(out, grid_sample_reference(x, 3, **kwargs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("box", [(0, 0, 28, 28), (3, 5, 20, 14), (10, 2, 12, 16), (8, 8, 20, 20)])
def test_interpolation_matrices_match_torchvision_resized_crop(box):
    """An integer box [top, left, height, width] resized back to 28x28, against
    torchvision's crop-then-resize. Away from the box's edges the two agree; at the
    edges torchvision repeats the box's border pixel where the crop reads the pixel
    beyond it (grid_sample's behaviour), so the two outermost output rows and columns
    are left out."""
    top, left, height, width = box
    size = 28
    image = torch.rand(1, size, size, generator=torch.Generator().manual_seed(1))
    # the box in normalised coordinates: half-extent and centre along each axis
    row_weights = augment._interpolation_matrix(
        size, torch.tensor([height / size]), torch.tensor([(2 * top + height) / size - 1])
    )[0]
    col_weights = augment._interpolation_matrix(
        size, torch.tensor([width / size]), torch.tensor([(2 * left + width) / size - 1])
    )[0]
    ours = row_weights @ image[0] @ col_weights.T
    theirs = TF.resized_crop(image, top, left, height, width, [size, size], antialias=False)[0]
    torch.testing.assert_close(ours[2:-2, 2:-2], theirs[2:-2, 2:-2], atol=1e-5, rtol=0)


def test_interpolation_matrix_rows_are_bilinear_weights():
    """Each output pixel reads at most two neighbouring input pixels, weights summing to 1."""
    generator = torch.Generator().manual_seed(0)
    scale = 0.1 + 0.9 * torch.rand(32, generator=generator)
    offset = (1 - scale) * (2 * torch.rand(32, generator=generator) - 1)
    weights = augment._interpolation_matrix(17, scale, offset)  # (32, 17, 17)
    torch.testing.assert_close(weights.sum(-1), torch.ones(32, 17))
    assert bool((weights >= 0).all())
    columns = torch.arange(17).expand_as(weights)
    read = weights > 0
    lowest = torch.where(read, columns, 17).amin(-1)
    highest = torch.where(read, columns, -1).amax(-1)
    assert bool((highest - lowest <= 1).all())  # one pixel, or two neighbours


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_crop_keeps_shape_dtype_range_and_input(dtype):
    x = torch.rand(6, 3, 9, 13, dtype=dtype, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    out = augment.random_resized_crop(x, torch.Generator().manual_seed(0), scale=(0.2, 1.0), flip=0.5)
    assert out.shape == x.shape and out.dtype == dtype and out.is_contiguous()
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    torch.testing.assert_close(x, before)


def test_crop_accepts_channels_last_input():
    x = torch.rand(5, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    out = augment.random_resized_crop(x.to(memory_format=torch.channels_last), torch.Generator().manual_seed(4))
    torch.testing.assert_close(out, augment.random_resized_crop(x, torch.Generator().manual_seed(4)))


def test_crop_is_seeded_and_consumes_the_generator_as_before():
    """Five (n,) draws per call, as the grid_sample version made: later draws from the
    same generator (colour jitter in a SimCLR view) stay what they were."""
    x = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    first, second = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    out = augment.random_resized_crop(x, first, scale=(0.3, 1.0), flip=0.5)
    torch.testing.assert_close(out, augment.random_resized_crop(x, second, scale=(0.3, 1.0), flip=0.5))
    reference = torch.Generator().manual_seed(7)
    _draw_boxes(reference, len(x), (0.3, 1.0), (3 / 4, 4 / 3), 0.5)
    assert torch.equal(first.get_state(), reference.get_state())


def test_crop_draws_per_sample_and_flips_at_the_given_rate():
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)).expand(400, -1, -1, -1)
    out = augment.random_resized_crop(x, torch.Generator().manual_seed(1), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.5)
    flipped = (out - x.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    kept = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert bool((flipped ^ kept).all())  # every image is itself or its mirror
    assert float(flipped.float().mean()) == pytest.approx(0.5, abs=0.08)
    crops = augment.random_resized_crop(x[:8], torch.Generator().manual_seed(2), scale=(0.2, 0.6))
    assert len({tuple(c.flatten().round(decimals=4).tolist()) for c in crops}) == 8


def test_crop_of_a_constant_image_is_constant():
    """The weights of every output pixel sum to one: no darkening at the crop's edges."""
    x = torch.full((20, 2, 11, 11), 0.7)
    out = augment.random_resized_crop(x, torch.Generator().manual_seed(0), scale=(0.08, 1.0), flip=0.5)
    torch.testing.assert_close(out, x)


# --- masks -------------------------------------------------------------------------------


def _images(n=6, channels=1, height=8, width=8, seed=0):
    return torch.rand(n, channels, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "shape, area, side",
    [((8, 8), 0.25, (4, 4)), ((28, 28), 0.25, (14, 14)), ((16, 16), 0.5, (11, 11)), ((1, 10), 0.25, (1, 5))],
)
def test_center_mask_is_the_central_rectangle(shape, area, side):
    x = _images(n=3, height=shape[0], width=shape[1])
    mask = augment.center_mask(x, area=area)
    assert mask.shape == (3, 1, *shape) and mask.dtype == torch.bool
    expected = torch.zeros(shape, dtype=torch.bool)
    top, left = (shape[0] - side[0]) // 2, (shape[1] - side[1]) // 2
    expected[top : top + side[0], left : left + side[1]] = True
    assert torch.equal(mask, expected.expand(3, 1, *shape))


@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (1, 10), (1, 1)])
def test_random_block_masks_are_per_sample_seeded_and_cover_at_most_the_area(shape):
    x = _images(n=64, channels=3, height=shape[0], width=shape[1])
    mask = augment.random_block_mask(x, torch.Generator().manual_seed(0), area=0.25, n_blocks=4)
    assert mask.shape == (64, 1, *shape) and mask.dtype == torch.bool
    side = [max(1, round(s * math.sqrt(0.25 / 4))) for s in shape]
    counts = mask.flatten(1).sum(dim=1)
    assert torch.all(counts >= side[0] * side[1]) and torch.all(counts <= 4 * side[0] * side[1])
    same = augment.random_block_mask(x, torch.Generator().manual_seed(0), area=0.25, n_blocks=4)
    assert torch.equal(mask, same)
    if shape != (1, 1):
        assert len(torch.unique(mask.flatten(1), dim=0)) > 1  # positions differ between images
        other = augment.random_block_mask(x, torch.Generator().manual_seed(1), area=0.25, n_blocks=4)
        assert not torch.equal(mask, other)


def test_one_random_block_is_a_whole_square_at_uniform_places():
    x = _images(n=4000, height=8, width=8)
    mask = augment.random_block_mask(x, torch.Generator().manual_seed(0), area=0.25, n_blocks=1)
    assert torch.all(mask.flatten(1).sum(dim=1) == 16)  # one 4x4 block, never clipped
    rows, cols = mask[:, 0].any(dim=2), mask[:, 0].any(dim=1)  # (B, H), (B, W)
    assert torch.all(rows.sum(dim=1) == 4) and torch.all(cols.sum(dim=1) == 4)
    tops = rows.float().argmax(dim=1)  # 5 possible top rows, 0..4
    frequencies = torch.bincount(tops, minlength=5) / len(tops)
    assert torch.all((frequencies - 0.2).abs() < 0.03), frequencies
