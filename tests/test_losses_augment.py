"""Losses against slow, obvious references; augmentations for shape, range, randomness."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skssl import augment
from skssl.losses import nt_xent


def nt_xent_reference(z_a, z_b, temperature):
    """NT-Xent written as in the SimCLR paper's Algorithm 1, one pair at a time."""
    z = [F.normalize(v, dim=0) for v in torch.cat([z_a, z_b])]
    n = len(z_a)

    def pair_loss(i, j):
        others = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * n) if k != i)
        return -math.log(math.exp(float(z[i] @ z[j]) / temperature) / others)

    return sum(pair_loss(k, k + n) + pair_loss(k + n, k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_reference(temperature):
    generator = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(2, 6, 5, generator=generator)
    assert float(nt_xent(z_a, z_b, temperature)) == pytest.approx(
        nt_xent_reference(z_a, z_b, temperature), rel=1e-5
    )


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
    out = augment.random_resized_crop(
        x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0)
    )
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_flip_is_a_mirror():
    x = _batch(1)
    out = augment.random_resized_crop(
        x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0
    )
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_color_jitter_on_grayscale_scales_brightness_and_contrast_only():
    x = _batch(1)
    out = augment.color_jitter(
        x, torch.Generator().manual_seed(0), brightness=0.0, contrast=0.0, p=1.0
    )
    torch.testing.assert_close(out, x)


def test_hue_rotation_by_full_turn_is_identity():
    x = _batch(3)
    torch.testing.assert_close(
        augment._rotate_hue(x, torch.full((8,), 2 * math.pi)), x, atol=1e-4, rtol=0
    )


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
    [((28, 28), (33, 33)), ((8, 8), (16, 16)), ((6, 10), (12, 20)), ((28, 28), (14, 14)),
     ((1, 64), (27, 64)), ((33, 20), (7, 9))],
)
def test_resize_is_bilinear_interpolation(shape, size):
    x = torch.rand(4, 3, *shape, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(augment.resize(x, size), expected, atol=1e-5, rtol=0)
    assert augment.resize(x, shape) is x
