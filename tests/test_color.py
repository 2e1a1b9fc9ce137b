"""Colour spaces and ab bins (``skssl.color``) against the CIE formulas written out, one
pixel at a time: Lab conversion, quantisation, soft encoding, rebalancing weights."""

import math

import numpy as np
import pytest
import torch

from skssl.color import (
    D65,
    RGB_TO_XYZ,
    _nearest_bins,
    ab_bins,
    encode_ab,
    lab_to_rgb,
    quantize_ab,
    quantize_unit,
    rebalancing_weights,
    rgb_to_lab,
)

# --- the colour space against the CIE formulas, one pixel at a time ----------------------


def lab_reference(r, g, b):
    """sRGB -> XYZ (D65) -> L*a*b* for one colour, as IEC 61966-2-1 and CIE 15 write it."""

    def linear(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    rgb = [linear(c) for c in (r, g, b)]
    x, y, z = (sum(m * c for m, c in zip(row, rgb)) / white for row, white in zip(RGB_TO_XYZ, D65))

    def f(t):
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_rgb_to_lab_matches_the_cie_formulas_pixel_by_pixel():
    rgb = torch.rand(3, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    rgb[0, :, 0, :3] = torch.tensor([0.0, 1.0, 0.02])  # black, white, a gray on the linear segment
    lab = rgb_to_lab(rgb)
    for n, i, j in np.ndindex(3, 4, 5):
        expected = lab_reference(*rgb[n, :, i, j].tolist())
        np.testing.assert_allclose(lab[n, :, i, j].tolist(), expected, atol=2e-3)


def test_lab_of_known_colours():
    white, black, red, green, blue = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]
    colours = torch.tensor([white, black, red, green, blue])
    lab = rgb_to_lab(colours.T.reshape(1, 3, 5, 1))[0, :, :, 0].T
    expected = [[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86]]
    np.testing.assert_allclose(lab.numpy(), expected, atol=0.02)


def test_lab_round_trip_and_dtypes():
    rgb = torch.rand(4, 3, 6, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    assert lab.dtype == torch.float32 and lab.shape == rgb.shape
    torch.testing.assert_close(lab_to_rgb(lab), rgb.float(), atol=2e-4, rtol=0)
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_to_lab(torch.zeros(2, 1, 4, 4))


# --- ab bins, soft encoding and rebalancing ---------------------------------------------


def test_ab_bins_cover_every_srgb_colour():
    centres = ab_bins()
    assert 250 < len(centres) < 313 and bool((centres % 10 == 0).all())
    rgb = torch.rand(1, 3, 100, 100, generator=torch.Generator().manual_seed(2))
    ab = rgb_to_lab(rgb)[:, 1:]
    assigned = centres[quantize_ab(ab)].permute(0, 3, 1, 2)  # (1, 2, H, W)
    assert float((assigned - ab).abs().max()) <= 5 + 1e-4  # every colour's own cell is a bin


def test_quantize_ab_is_the_nearest_bin():
    centres = ab_bins().tolist()
    ab = torch.empty(1, 2, 40, 10).uniform_(-110, 110, generator=torch.Generator().manual_seed(3))
    index = quantize_ab(ab)
    for i, j in np.ndindex(40, 10):
        a, b = ab[0, :, i, j].tolist()
        distances = [math.hypot(a - ca, b - cb) for ca, cb in centres]
        assert distances[index[0, i, j]] == pytest.approx(min(distances), abs=1e-4)


def test_nearest_bins_match_a_search_over_every_bin():
    # the search looks only at each lattice square's candidates; it must find the same
    # k nearest as a search over all bins, for colours and for any point of the ab box
    centres = ab_bins()
    generator = torch.Generator().manual_seed(0)
    colours = rgb_to_lab(torch.rand(1, 3, 20000, 1, generator=generator))[0, 1:, :, 0].T
    anywhere = torch.empty(20000, 2).uniform_(-110, 110, generator=generator)
    for points in (colours, anywhere):
        for k in (1, 5):
            distance, index = _nearest_bins(points, k)
            expected = torch.cdist(points.double(), centres.double()).topk(k, dim=1, largest=False).values
            torch.testing.assert_close(distance.double(), expected, atol=1e-4, rtol=0)
            found = (points[:, None] - centres[index]).norm(dim=2).double()
            torch.testing.assert_close(found, expected, atol=1e-4, rtol=0)


def test_ab_beyond_the_srgb_range_is_clamped():
    ab = torch.tensor([[200.0, -150.0], [110.0, -110.0]]).T.reshape(1, 2, 2, 1)
    assert torch.equal(quantize_ab(ab)[0, 0], quantize_ab(ab)[0, 1])


def test_soft_encoding_matches_reference():
    centres = ab_bins().tolist()
    ab = torch.tensor([[3.0, -41.0], [57.0, 12.5], [-20.0, -20.0]]).T.reshape(1, 2, 3, 1)
    encoded = encode_ab(ab)
    assert encoded.shape == (1, len(centres), 3, 1)
    for k in range(3):
        a, b = ab[0, :, k, 0].tolist()
        distance = [math.hypot(a - ca, b - cb) for ca, cb in centres]
        ranked = sorted(range(len(centres)), key=distance.__getitem__)
        weights = {q: math.exp(-(distance[q] ** 2) / (2 * 5.0**2)) for q in ranked[:5]}  # sigma = 5
        total = sum(weights.values())
        expected = [weights.get(q, 0.0) / total for q in range(len(centres))]
        np.testing.assert_allclose(encoded[0, :, k, 0].numpy(), expected, atol=1e-6)
    hard = encode_ab(ab, soft=False)
    torch.testing.assert_close(hard.argmax(dim=1), quantize_ab(ab))
    assert torch.equal(hard.sum(dim=1), torch.ones(1, 3, 1))


def rebalancing_reference(counts, lam, sigma):
    centres = ab_bins().tolist()
    q = len(centres)
    prior = [c / sum(counts) for c in counts]
    kernel = [[math.exp(-(math.dist(u, v) ** 2) / (2 * sigma**2)) for v in centres] for u in centres]
    column = [sum(kernel[i][j] for i in range(q)) for j in range(q)]
    smoothed = [sum(kernel[i][j] * prior[j] / column[j] for j in range(q)) for i in range(q)]
    weights = [1 / ((1 - lam) * s + lam / q) for s in smoothed]
    scale = sum(s * w for s, w in zip(smoothed, weights))
    return [w / scale for w in weights], smoothed


@pytest.mark.parametrize("lam", [0.1, 0.5, 1.0])
def test_rebalancing_weights_match_reference(lam):
    counts = torch.zeros(len(ab_bins()))
    counts[[5, 6, 40, 100]] = torch.tensor([500.0, 200.0, 20.0, 1.0])
    weights = rebalancing_weights(counts, lam=lam, sigma=5.0)
    expected, smoothed = rebalancing_reference(counts.tolist(), lam, 5.0)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-4)
    assert sum(s * w for s, w in zip(smoothed, weights.tolist())) == pytest.approx(1.0, rel=1e-5)  # E[w] = 1
    if lam == 1.0:
        np.testing.assert_allclose(weights.numpy(), 1.0, rtol=1e-5)  # no rebalancing
    else:
        assert weights[100] > weights[40] > weights[6] > weights[5]  # rarer colours weigh more


def test_quantize_unit():
    values = torch.tensor([0.0, 0.019, 0.02, 0.5, 0.999, 1.0])
    assert quantize_unit(values, 50).tolist() == [0, 0, 1, 25, 49, 49]
