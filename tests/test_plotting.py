"""skssl.plotting: the pixels drawn are the task's own views, every registered method
draws, fitted or not, and the figures of reconstructions, history and features."""

import sys

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

from skssl import (
    ColorizationFeaturizer,
    ContextEncoderFeaturizer,
    DenoisingAEFeaturizer,
    ExemplarFeaturizer,
    MAEFeaturizer,
    RandomFeaturizer,
    RotNetFeaturizer,
    SimCLRFeaturizer,
    SplitBrainFeaturizer,
)
from skssl._panels import mosaic
from skssl._training import to_unit
from skssl.datasets import load_sample_patches
from skssl.plotting import _task_and_batch, plot_embedding, plot_history, plot_reconstructions, plot_views
from skssl.registry import METHODS
from skssl.task import PretextTask

from _testing import ONE_EPOCH, assert_same_weights

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

N = 3  # images drawn


@pytest.fixture(scope="module")
def digits(digits):
    X, y = digits
    return X[:60], y[:60]


@pytest.fixture(scope="module")
def colour():
    return load_sample_patches(16, 40, random_state=0)[0]  # (40, 16, 16, 3) uint8


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def pictures(fig, n=N):
    """The array drawn in every axes, as a grid (images, columns)."""
    axes = np.array(fig.axes).reshape(n, -1)
    assert all(len(ax.images) == 1 for ax in axes.flat)
    return [[np.asarray(ax.images[0].get_array()) for ax in row] for row in axes]


def as_drawn(image):
    """A (C, H, W) tensor as plot_views draws it: clipped to [0, 1], gray or channels last."""
    array = image.clamp(0, 1).numpy()
    return array[0] if len(array) == 1 else array.transpose(1, 2, 0)


def unit_batch(featurizer, X):
    """The first N images of 8x8 digit rows on [0, 1], as the featurizer's fit scales them."""
    return to_unit(torch.from_numpy(X[:N].reshape(N, 1, 8, 8)), featurizer.value_range_)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_draws_the_views_of_an_unfitted_featurizer(name, digits, colour):
    for X in (digits[0], colour):
        featurizer = METHODS[name].estimator(random_state=0)
        if name == "colorization" and X is digits[0]:
            with pytest.raises(ValueError, match="colour"):
                plot_views(featurizer, X, n=N)
            continue
        fig = plot_views(featurizer, X, n=N)
        drawn = pictures(fig)
        assert len(drawn[0]) >= 2  # the image, then at least one panel
        for row in drawn:
            for array in row:
                assert array.ndim in (2, 3) and np.isfinite(array).all() and 0 <= array.min() <= array.max() <= 1
        assert not hasattr(featurizer, "n_features_in_")  # still unfitted: a clone was built
        fig.canvas.draw()


# the columns of plot_views (after the image) as views' (inputs, targets) for N images
EXPECTED_COLUMNS = {
    "rotnet": lambda inputs, targets: list(inputs.split(N)),
    "simclr": lambda inputs, targets: list(inputs.split(N)),
    "exemplar": lambda inputs, targets: list(inputs.split(N)),
    "denoising": lambda inputs, targets: [inputs, targets],
}


@pytest.mark.parametrize("name", list(EXPECTED_COLUMNS))
def test_the_pixels_drawn_are_the_views_of_the_task(name, digits):
    X = digits[0]
    featurizer = METHODS[name].estimator(**ONE_EPOCH).fit(X)
    batch = unit_batch(featurizer, X)
    inputs, targets = featurizer.task_.views(batch, torch.Generator().manual_seed(7))
    expected = [batch, *EXPECTED_COLUMNS[name](inputs, targets)]

    fitted = pictures(plot_views(featurizer, X, n=N, random_state=7))
    unfitted = pictures(plot_views(clone(featurizer), X, n=N, random_state=7))
    for row in range(N):
        assert len(fitted[row]) == len(expected)
        for column, images in enumerate(expected):
            np.testing.assert_array_equal(fitted[row][column], as_drawn(images[row]))
            np.testing.assert_array_equal(unfitted[row][column], fitted[row][column])  # views need no training


def test_the_views_follow_random_state(digits):
    featurizer = SimCLRFeaturizer(random_state=0)
    first, again, other = (pictures(plot_views(featurizer, digits[0], n=N, random_state=s)) for s in (1, 1, 2))
    np.testing.assert_array_equal(first[0][1], again[0][1])
    assert not np.array_equal(first[0][1], other[0][1])


def test_every_layout_draws_the_same_images(digits, colour):
    rows = digits[0]
    for X in (rows, rows.reshape(-1, 8, 8), rows.reshape(-1, 8, 8, 1), rows.reshape(-1, 1, 8, 8)):
        drawn = pictures(plot_views(RotNetFeaturizer(), X, n=N))
        np.testing.assert_array_equal(drawn[1][0], rows[1].reshape(8, 8) / 16)
    channels_first = colour.transpose(0, 3, 1, 2)
    for X in (colour, channels_first, colour.astype(np.float32) / 255):
        drawn = pictures(plot_views(ColorizationFeaturizer(), X, n=N))
        np.testing.assert_allclose(drawn[2][0], colour[2] / 255, atol=1e-6)


def test_a_few_images_and_a_figure_of_ones_own(digits):
    assert len(plot_views(RotNetFeaturizer(), digits[0][:2], n=5).axes) == 2 * 5  # X has only 2 images
    figure = plt.figure()
    left, right = figure.subfigures(1, 2)
    assert plot_views(RotNetFeaturizer(), digits[0], n=1, fig=right) is right
    assert len(right.axes) == 5 and not left.axes


def test_bad_arguments_are_named(digits):
    X = digits[0]
    with pytest.raises(TypeError, match="BaseFeaturizer"):
        plot_views(RandomFeaturizer(), X)
    for n in (0, 1.5, None):
        with pytest.raises(ValueError, match="positive integer"):
            plot_views(RotNetFeaturizer(), X, n=n)
    with pytest.raises(TypeError, match="Figure or SubFigure"):
        plot_views(RotNetFeaturizer(), X, fig="figure")
    with pytest.raises(ValueError, match="crop_scale"):
        plot_views(SimCLRFeaturizer(crop_scale=(0.9, 0.1)), X)


class TwoViews(PretextTask):
    """A task of the default panels: two image views and a label per view."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Identity()

    def views(self, batch, generator, targets=None):
        return torch.cat([batch, 1 - batch]), torch.arange(2 * len(batch))

    def loss(self, inputs, targets):
        return inputs.mean()


def test_the_default_panels_show_the_images_among_the_views():
    batch = torch.rand(2, 1, 4, 4)
    panels = TwoViews().view_panels(batch, *TwoViews().views(batch, None))
    assert [panel.title for panel in panels] == ["input 1", "input 2"]
    assert panels[1].captions == ("label 2", "label 3")
    torch.testing.assert_close(panels[1].images, 1 - batch)
    image_and_target = TwoViews().view_panels(batch, batch, batch.flip(3))
    assert [panel.title for panel in image_and_target] == ["input", "target"]
    assert TwoViews().view_panels(batch, batch, {"not": "images"})[0].title == "input"
    assert TwoViews().reconstruction_panels(batch, batch, None) is None


def test_mosaic_puts_every_tile_in_its_cell():
    tiles = torch.arange(2.0).view(1, 2, 1, 1, 1).expand(1, 2, 1, 2, 2)  # tiles of 0 and 1
    picture = mosaic(tiles, (2, 2), cells=torch.tensor([[3, 0]]))[0, 0]
    assert picture.shape == (5, 5)
    assert (picture[3:, 3:] == 0).all() and (picture[:2, :2] == 1).all() and (picture[2] == 0.5).all()


@pytest.mark.parametrize(
    "make, data",
    [
        (DenoisingAEFeaturizer, "digits"),
        (ContextEncoderFeaturizer, "digits"),
        (MAEFeaturizer, "digits"),
        (ColorizationFeaturizer, "colour"),
        (SplitBrainFeaturizer, "colour"),
        (SplitBrainFeaturizer, "digits"),
    ],
)
def test_reconstructions_leave_the_fitted_network_as_it_was(make, data, digits, colour):
    X = digits[0] if data == "digits" else colour
    featurizer = make(**ONE_EPOCH).fit(X)
    weights = {name: value.clone() for name, value in featurizer.task_.state_dict().items()}
    fig = plot_reconstructions(featurizer, X, n=N)
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes[: len(pictures(fig)[0])]]
    assert titles[0] == "image"
    assert any(title.startswith(("reconstruction", "predicted", "painted", "hidden")) for title in titles)
    assert_same_weights(featurizer.task_.state_dict(), weights)
    assert not featurizer.task_.training


def test_the_reconstruction_drawn_is_the_networks(digits):
    X = digits[0]
    featurizer = DenoisingAEFeaturizer(**ONE_EPOCH).fit(X)
    batch = unit_batch(featurizer, X)
    inputs, _ = featurizer.task_.views(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        reconstruction = featurizer.task_.reconstruct(inputs).view_as(inputs)
    drawn = pictures(plot_reconstructions(featurizer, X, n=N, random_state=0))
    for row in range(N):
        np.testing.assert_array_equal(drawn[row][2], as_drawn(reconstruction[row]))


def test_reconstructions_need_a_fitted_method_that_reconstructs(digits):
    X = digits[0]
    with pytest.raises(NotFittedError):
        plot_reconstructions(DenoisingAEFeaturizer(), X)
    with pytest.raises(ValueError, match="does not reconstruct"):
        plot_reconstructions(ExemplarFeaturizer(**ONE_EPOCH).fit(X), X)


def test_history_draws_the_loss_of_every_epoch(digits):
    featurizer = RotNetFeaturizer(**ONE_EPOCH, warm_start=True).fit(digits[0])
    featurizer.set_params(max_epochs=2).fit(digits[0])  # epochs numbered across the refit
    line = plot_history(featurizer).get_lines()[0]
    assert line.get_xdata().tolist() == [1, 2, 3]
    assert line.get_ydata().tolist() == [record["loss"] for record in featurizer.history_]


class Trained(BaseEstimator):
    """An estimator with a given history_."""

    def __init__(self, history=None):
        self.history = history

    def fit(self, X=None, y=None):
        self.history_ = self.history
        return self


def test_history_draws_the_validation_score_and_the_stages():
    history = [
        {"stage": "fine_tune", "epoch": 1, "loss": 2.0, "validation_score": 0.5},
        {"stage": "fine_tune", "epoch": 2, "loss": 1.0, "validation_score": 0.7},
        {"stage": "semi_supervised", "epoch": 1, "loss": 0.8, "validation_score": 0.8},
    ]
    ax = plot_history(Trained(history).fit())
    right = [other for other in ax.figure.axes if other is not ax]
    assert right[0].get_lines()[0].get_ydata().tolist() == [0.5, 0.7, 0.8]
    assert [text.get_text().strip() for text in ax.texts] == ["fine_tune", "semi_supervised"]
    with pytest.raises(NotFittedError):
        plot_history(Trained(history))
    with pytest.raises(ValueError, match="max_epochs=0"):
        plot_history(Trained([]).fit())


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_draws_a_point_per_image_coloured_by_class(method, digits):
    X, y = digits
    featurizer = RotNetFeaturizer(**ONE_EPOCH).fit(X)
    ax = plot_embedding(featurizer, X, y, method=method)
    assert sum(len(group.get_offsets()) for group in ax.collections) == len(X)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [str(label) for label in np.unique(y)]


def test_embedding_of_many_classes_gets_a_colour_bar_and_bad_arguments_are_named(digits):
    X, _ = digits
    featurizer = RotNetFeaturizer(**ONE_EPOCH).fit(X)
    ax = plot_embedding(featurizer, X, np.arange(len(X)))
    assert ax.get_legend() is None and len(ax.figure.axes) == 2  # the colour bar's
    with pytest.raises(ValueError, match="pca"):
        plot_embedding(featurizer, X, np.zeros(len(X)), method="umap")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        plot_embedding(featurizer, X, np.zeros(len(X) - 1))
    with pytest.raises(ValueError, match="one label per image"):
        plot_embedding(featurizer, X, np.zeros((len(X), 2)))


def test_plots_say_how_to_get_matplotlib(monkeypatch, digits):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "skssl\[plot\]"'):
        plot_views(RotNetFeaturizer(), digits[0], n=1)
    with pytest.raises(ImportError, match=r'pip install "skssl\[plot\]"'):
        plot_history(Trained([{"epoch": 1, "loss": 1.0}]).fit())


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_draws_the_panels_of_its_own_views(name, digits, colour):
    """For a fixed generator, every column drawn is the task's ``view_panels`` of its
    ``views``, made here by calling them directly."""
    X = colour if name in ("colorization", "split_brain") else digits[0]
    featurizer = METHODS[name].estimator(max_epochs=0, batch_size=16, random_state=0).fit(X)  # untrained task
    task = featurizer.task_
    _, batch = _task_and_batch(featurizer, X, N)
    with torch.no_grad():
        panels = task.view_panels(batch, *task.views(batch, torch.Generator().manual_seed(3)))
    drawn = pictures(plot_views(featurizer, X, n=N, random_state=3))
    for row in range(N):
        assert len(drawn[row]) == 1 + len(panels)
        for column, panel in enumerate(panels, start=1):
            np.testing.assert_array_equal(drawn[row][column], as_drawn(panel.images[row]))
