"""Colour pretext tasks: Lab conversion and ab bins against the CIE formulas written out,
Colorization and split-brain featurizers (shapes, errors, persistence, scikit-learn's
checks, evidence that they learn) and the sample-patch data set."""

import gc
import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from skssl import load
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
from skssl.datasets import load_sample_patches
from skssl.evaluation import linear_probe, pixel_probe
from skssl.losses import rebalanced_cross_entropy
from skssl.methods.colorization import ColorizationFeaturizer, ColorSpaceBackbone
from skssl.methods.split_brain import SplitBrainFeaturizer

FAST = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
RNG = np.random.default_rng(0)
COLOUR = RNG.random((24, 8, 8, 3)).astype(np.float32)
DIGITS = load_digits().data[:48]


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
        weights = {q: math.exp(-distance[q] ** 2 / (2 * 5.0**2)) for q in ranked[:5]}  # sigma = 5
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
    kernel = [[math.exp(-math.dist(u, v) ** 2 / (2 * sigma**2)) for v in centres] for u in centres]
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


def test_rebalanced_cross_entropy_matches_reference():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 3, 2, generator=generator)
    targets = torch.softmax(3 * torch.randn(2, 5, 3, 2, generator=generator), dim=1)
    class_weights = torch.rand(5, generator=generator) + 0.5
    total = 0.0
    for n, i, j in np.ndindex(2, 3, 2):
        scores = logits[n, :, i, j].tolist()
        log_normaliser = math.log(sum(math.exp(s) for s in scores))
        target = targets[n, :, i, j].tolist()
        weight = class_weights.tolist()[max(range(5), key=lambda q: target[q])]
        total += -weight * sum(t * (s - log_normaliser) for t, s in zip(target, scores))
    value = rebalanced_cross_entropy(logits, targets, class_weights)
    assert float(value) == pytest.approx(total / 12, rel=1e-5)  # the mean over 2 x 3 x 2 positions
    plain = torch.nn.functional.cross_entropy(logits, targets)
    assert float(rebalanced_cross_entropy(logits, targets)) == pytest.approx(float(plain), rel=1e-5)


def test_quantize_unit():
    values = torch.tensor([0.0, 0.019, 0.02, 0.5, 0.999, 1.0])
    assert quantize_unit(values, 50).tolist() == [0, 0, 1, 25, 49, 49]


# --- the featurizers ----------------------------------------------------------------------


def test_colorization_refuses_grayscale_images():
    with pytest.raises(ValueError, match="needs colour \\(RGB\\) images.*1 channel"):
        ColorizationFeaturizer(**FAST).fit(DIGITS)
    with pytest.raises(ValueError, match="3 channels"):
        ColorizationFeaturizer(**FAST).fit(np.zeros((8, 6, 6, 4)))


@pytest.mark.parametrize(
    "X, kwargs, n_features",
    [
        (COLOUR, {}, 64),  # 8x8 colour: conv3 is 2x2x16
        (RNG.random((16, 16, 16, 3)), {}, 64),
        (RNG.random((16, 2, 2, 3)), {}, 64),  # tiny: no downsampling, a 2x2 target grid
        (RNG.random((16, 28 * 28 * 3)), {"image_shape": (28, 28, 3)}, 64),
        (COLOUR, {"objective": "regression", "layer": "conv2"}, 128),
        (COLOUR, {"soft_encoding": False, "rebalancing": 1.0, "pool": "avg"}, 16),
    ],
    ids=["8x8", "16x16", "2x2", "28x28-rows", "regression", "hard"],
)
def test_colorization_shapes(X, kwargs, n_features):
    featurizer = ColorizationFeaturizer(**{**FAST, **kwargs}).fit(X)
    features = featurizer.transform(X)
    assert features.shape == (len(X), n_features) and features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.parametrize(
    "X, split, n_features",
    [
        (DIGITS, "halves", 128),  # two 8x4 halves: 2x2x16 each
        (RNG.random((16, 28, 28)), "halves", 64),  # two 28x14 halves: 2x1x16 each
        (RNG.random((16, 1, 7)), "halves", 64),  # 1 x 7 signals: 1 x 4 halves sharing a column
        (RNG.random((16, 8, 8, 4)), "halves", 128),  # RGBA: each half predicts 4 channels
        (COLOUR, "lab", 128),
        (RNG.random((16, 16, 16, 3)), "lab", 128),
    ],
    ids=["digits", "28x28", "1x7", "rgba", "8x8-colour", "16x16-colour"],
)
def test_split_brain_shapes(X, split, n_features):
    featurizer = SplitBrainFeaturizer(**FAST).fit(X)
    assert featurizer.task_.backbone.split == split
    features = featurizer.transform(X)
    assert features.shape == (len(X), n_features) and features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.filterwarnings("ignore:batch_size=.* is larger than")
def test_one_tiny_image_is_refused_clearly():
    with pytest.raises(ValueError, match="SplitBrainFeaturizer cannot train on n_samples=1"):
        SplitBrainFeaturizer(**FAST).fit(np.ones((1, 1, 10)))  # 1x5 halves: 1x1 maps after conv1
    with pytest.raises(ValueError, match="ColorizationFeaturizer cannot train on n_samples=1"):
        ColorizationFeaturizer(**FAST, image_shape=(1, 1, 3)).fit(np.ones((1, 3)))
    SplitBrainFeaturizer(**FAST).fit(DIGITS[:1])  # room for batch norm: one image trains
    ColorizationFeaturizer(**FAST).fit(COLOUR[:1])


def _unit_batch(X):
    return torch.as_tensor(X, dtype=torch.float32).permute(0, 3, 1, 2)


def _recoloured(X):
    """The same images with their colours halved (same lightness), back in RGB."""
    lab = rgb_to_lab(_unit_batch(X))
    lab[:, 1:] *= 0.5
    rgb = lab_to_rgb(lab)
    torch.testing.assert_close(rgb_to_lab(rgb)[:, 0], rgb_to_lab(_unit_batch(X))[:, 0], atol=1e-3, rtol=0)
    return rgb.permute(0, 2, 3, 1).numpy()


def test_colorization_sees_only_lightness_and_split_brain_sees_both():
    X = 0.2 + 0.6 * COLOUR  # away from the gamut's edge, so that recolouring is exact
    X[0, 0, :2] = [[0, 0, 0], [1, 1, 1]]  # values span [0, 1]: featurizers see them unscaled
    recoloured = _recoloured(X)
    colorization = ColorizationFeaturizer(**FAST).fit(X)
    np.testing.assert_allclose(colorization.transform(recoloured), colorization.transform(X), atol=1e-3)
    split_brain = SplitBrainFeaturizer(**FAST).fit(X)
    before, after = split_brain.transform(X), split_brain.transform(recoloured)
    half = 64  # (16, 2, 2) per sub-network, the L one's channels first
    assert before.shape[1] == 2 * half
    np.testing.assert_allclose(after[:, :half], before[:, :half], atol=1e-3)  # the L sub-network
    assert not np.allclose(after[:, half:], before[:, half:], atol=1e-2)  # the ab sub-network


def test_lab_inputs_are_standardised_with_training_statistics():
    featurizer = ColorizationFeaturizer(**FAST).fit(COLOUR)
    lab = rgb_to_lab(_unit_batch((COLOUR - COLOUR.min()) / (COLOUR.max() - COLOUR.min()))).double()
    backbone = featurizer.task_.backbone
    assert isinstance(backbone, ColorSpaceBackbone)
    torch.testing.assert_close(backbone.mean.flatten(), lab.mean(dim=(0, 2, 3)).float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        backbone.std.flatten(), lab.std(dim=(0, 2, 3), correction=0).float(), rtol=1e-4, atol=1e-4
    )
    gray = SplitBrainFeaturizer(**FAST).fit(DIGITS).task_.backbone  # no conversion: gray-level stats
    assert gray.mean.item() == pytest.approx(DIGITS.mean() / 16, rel=1e-4)


def test_rebalancing_weights_are_fitted_state():
    featurizer = ColorizationFeaturizer(**FAST).fit(COLOUR)
    weights = featurizer.task_.class_weights
    assert "class_weights" in dict(featurizer.task_.named_buffers())
    assert not torch.allclose(weights, torch.ones_like(weights))
    assert "class_weights" not in featurizer.get_params()
    off = ColorizationFeaturizer(**FAST, rebalancing=1.0).fit(COLOUR).task_.class_weights
    torch.testing.assert_close(off, torch.ones_like(off))


@pytest.mark.parametrize(
    "featurizer, X",
    [
        (ColorizationFeaturizer(**FAST), COLOUR),
        (SplitBrainFeaturizer(**FAST), COLOUR),
        (SplitBrainFeaturizer(**FAST), DIGITS),
    ],
    ids=["colorization", "split-brain-colour", "split-brain-gray"],
)
def test_save_load_and_pickle(featurizer, X, tmp_path):
    featurizer.fit(X)
    expected = featurizer.transform(X)
    featurizer.save(tmp_path / "featurizer.pt")
    restored = load(tmp_path / "featurizer.pt")
    assert type(restored.task_.backbone) is ColorSpaceBackbone
    np.testing.assert_array_equal(restored.transform(X), expected)
    for name, value in featurizer.task_.state_dict().items():
        torch.testing.assert_close(restored.task_.state_dict()[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(featurizer)).transform(X), expected)


def test_colorization_behaves_like_an_estimator_on_colour_images():
    """What scikit-learn's checks (which feed grayscale tables) would check, on colour."""
    X = COLOUR.reshape(len(COLOUR), -1)
    featurizer = ColorizationFeaturizer(**FAST, image_shape=(8, 8, 3))
    before = X.copy()
    first = featurizer.fit(X).transform(X)
    np.testing.assert_array_equal(X, before)  # input untouched
    np.testing.assert_array_equal(clone(featurizer).fit(X).transform(X), first)  # idempotent
    np.testing.assert_allclose(featurizer.transform(X[::-1]), first[::-1], atol=1e-6)  # order
    np.testing.assert_allclose(featurizer.transform(X[:5]), first[:5], atol=1e-6)  # subsets
    assert featurizer.n_features_in_ == 192 and featurizer.get_feature_names_out().shape == (64,)
    assert featurizer.fit_transform(X.astype(np.float64)).dtype == np.float32


# --- scikit-learn's checks ----------------------------------------------------------------

_GRAYSCALE = "fits on a grayscale table; ColorizationFeaturizer requires colour images"
COLORIZATION_EXPECTED_FAILURES = {
    name: _GRAYSCALE
    for name in [
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    ]
}


def _expected_failures(estimator):
    return COLORIZATION_EXPECTED_FAILURES if isinstance(estimator, ColorizationFeaturizer) else {}


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.filterwarnings("ignore:batch_size=.* is larger than")
@parametrize_with_checks(
    [SplitBrainFeaturizer(**FAST), ColorizationFeaturizer(**FAST)],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --- each method learns -------------------------------------------------------------------


def _learning_run(featurizer, X, y):
    featurizer.fit(X[:1000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])  # same init
    losses = [epoch["loss"] for epoch in featurizer.history_]
    spread = np.median(featurizer.transform(X[1000:]).std(axis=0))
    accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
    baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
    return losses, spread, accuracy, baseline


PATCHES = dict(patch_size=16, n_patches=2000, random_state=0)


# Pretext on 1,000 unlabeled images, probe on 300 labels, test on the others (797 digits,
# 1,000 sample patches). Gains of the last stage's features over the same network's
# random-init ones for seeds 0, 1, 2 when the margins were set (1 CPU thread):
#   Colorization on patches: +0.066, +0.103, +0.071 (probe 0.50-0.52; raw pixels: 0.42);
#   split-brain on patches: +0.086, +0.055, +0.074;  on digits: +0.055, +0.046, +0.038.
# Last-epoch loss over first: 0.66-0.67, 0.54, 0.61-0.64; median feature std: 0.39-0.82.
# Split-brain on digits needs its ~300 steps (batches of 32): with 150 steps of 64 at
# learning_rate=1e-3 the gains were -0.02 to +0.03; 30 such epochs gave +0.02 to +0.08.
@pytest.mark.parametrize(
    "make, data, margin",
    [
        (lambda: ColorizationFeaturizer(max_epochs=10, batch_size=64), "patches", 0.03),
        (lambda: SplitBrainFeaturizer(max_epochs=10, batch_size=32, learning_rate=2e-3), "patches", 0.025),
        (lambda: SplitBrainFeaturizer(max_epochs=10, batch_size=32, learning_rate=2e-3), "digits", 0.015),
    ],
    ids=["colorization-patches", "split-brain-patches", "split-brain-digits"],
)
def test_features_beat_random_features(make, data, margin):
    X, y = load_sample_patches(**PATCHES) if data == "patches" else load_digits(return_X_y=True)
    featurizer = make().set_params(device="cpu", random_state=0)
    losses, spread, accuracy, baseline = _learning_run(featurizer, X, y)
    assert losses[-1] < 0.8 * losses[0], losses
    assert spread > 0.2, spread  # no collapse to a constant embedding
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- the sample patches -------------------------------------------------------------------


def test_load_sample_patches():
    X, y = load_sample_patches(random_state=0)
    assert X.shape == (2000, 16, 16, 3) and X.dtype == np.uint8
    assert y.shape == (2000,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [250] * 8
    X_again, y_again = load_sample_patches(random_state=0)
    np.testing.assert_array_equal(X, X_again)
    np.testing.assert_array_equal(y, y_again)
    assert not np.array_equal(load_sample_patches(random_state=1)[0], X)
    X_odd, y_odd = load_sample_patches(patch_size=5, n_patches=13, random_state=0)
    assert X_odd.shape == (13, 5, 5, 3) and sorted(np.bincount(y_odd).tolist()) == [1] * 3 + [2] * 5
    assert load_sample_patches(patch_size=106, n_patches=8, random_state=0)[0].shape == (8, 106, 106, 3)
    for bad in ({"patch_size": 3}, {"patch_size": 107}, {"n_patches": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            load_sample_patches(**bad)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sample_patches_are_a_task_neither_trivial_nor_hopeless():
    X, y = load_sample_patches(random_state=0)
    accuracy = pixel_probe(X[:300], y[:300], X[1000:], y[1000:])
    assert 0.25 < accuracy < 0.6, accuracy  # chance: 0.125; seeds 0, 1, 2 gave 0.42, 0.41, 0.41


def test_colorization_encodes_the_training_targets_once_and_keeps_them_out_of_the_model():
    X, _ = load_sample_patches(n_patches=64, random_state=0)
    featurizer = ColorizationFeaturizer(max_epochs=1, batch_size=32, device="cpu", random_state=0).fit(X)
    task = featurizer.task_.train()
    assert "_targets" not in task.__dict__  # dropped with the fit's copy of the images
    images = torch.as_tensor(X).permute(0, 3, 1, 2).contiguous()
    targets = task.start_epoch(images, (0.0, 255.0), None)
    assert task.start_epoch(images, (0.0, 255.0), None) is targets  # encoded once per set
    assert "_targets" not in pickle.loads(pickle.dumps(task)).__dict__
    batch = images[:8].float() / 255
    _, built = task.views(batch, None)
    torch.testing.assert_close(targets[:8], built)
    torch.testing.assert_close(task(batch, None, targets[:8]), task(batch, None))
    other = images.flip(0)
    other_targets = task.start_epoch(other, (0.0, 255.0), None)  # another set replaces it
    del images, targets
    gc.collect()
    assert task.start_epoch(other, (0.0, 255.0), None) is other_targets  # the first set's end left it
    del other, other_targets
    gc.collect()
    assert "_targets" not in task.__dict__
