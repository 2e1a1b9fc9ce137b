"""The separable random resized crop against slow per-image references.

``augment.random_resized_crop`` resamples every image as ``Ry @ x @ Rx^T`` (two batched
matrix products) instead of an affine ``grid_sample``; these tests pin it to the
``grid_sample`` formula it replaced, image by image, and to torchvision's crop-then-resize.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from skssl import augment


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
