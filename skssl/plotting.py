"""Figures of what a featurizer does: its pretext task's views, its reconstructions,
its training history and the map of its features.

- :func:`plot_views`: what the pretext task makes of a few images (rotations, tiles,
  augmented views, masks, ...), fitted or not;
- :func:`plot_reconstructions`: a fitted network's reconstruction next to its input
  and target, for the methods that reconstruct (denoising, context encoder, MAE,
  colorization, split-brain);
- :func:`plot_history`: the loss of every epoch, and the validation score;
- :func:`plot_embedding`: the features of images in two dimensions (PCA or t-SNE),
  coloured by their labels.

The views are the task's own: each :class:`~skssl.task.PretextTask` makes them with
:meth:`~skssl.task.PretextTask.views`, as in training, and labels them with its
:meth:`~skssl.task.PretextTask.view_panels` hook. matplotlib is an optional
dependency: ``pip install "skssl[plot]"``.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")  # no window
>>> from sklearn.datasets import load_digits
>>> from skssl import RotNetFeaturizer
>>> from skssl.plotting import plot_views
>>> X = load_digits().data[:20]
>>> fig = plot_views(RotNetFeaturizer(random_state=0), X, n=2)  # unfitted: no training needed
>>> [ax.get_title() for ax in fig.axes[:5]]
['image', '0°', '90°', '180°', '270°']
"""

from __future__ import annotations

import textwrap
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.manifold import TSNE
from sklearn.utils import check_consistent_length, check_random_state
from sklearn.utils.validation import check_is_fitted

from ._data import check_images, to_tensor
from ._panels import ViewPanel
from ._setup import prepare_fit
from ._training import to_unit
from .base import BaseFeaturizer
from .evaluation import _pyplot
from .registry import METHODS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from numpy.typing import ArrayLike

__all__ = ["plot_embedding", "plot_history", "plot_reconstructions", "plot_views"]

EMBEDDINGS = ("pca", "tsne")


def plot_views(
    featurizer: BaseFeaturizer,
    X: ArrayLike,
    n: int = 4,
    *,
    random_state: int | np.random.RandomState | None = 0,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Draw what the featurizer's pretext task makes of the first ``n`` images of ``X``.

    The task's own :meth:`~skssl.task.PretextTask.views` make the views, as in
    training, and its :meth:`~skssl.task.PretextTask.view_panels` label them: the
    rotations and their classes (RotNet), the shuffled and solved tiles (jigsaw),
    the two augmented views (SimCLR and the other two-view methods), the corrupted
    input and its target (denoising), ... One row per image, one column per panel,
    the image itself first.

    An unfitted featurizer works too: its task is built for ``X`` as ``fit`` would
    build it (the same seeds, statistics and value range, on the CPU), and nothing
    is trained; the featurizer is left unfitted. A fitted one uses its ``task_``, its
    value range and the image shape it was fitted on.

    Parameters
    ----------
    featurizer : BaseFeaturizer
        A pretext featurizer, fitted or not (e.g. ``RotNetFeaturizer()``).
    X : array-like
        Images in any layout ``fit`` takes: flat rows, ``(n, H, W)``,
        ``(n, H, W, C)`` or ``(n, C, H, W)``, uint8 or float. For an unfitted
        featurizer all of ``X`` sets the value range and statistics, as in ``fit``.
    n : int, default=4
        Images drawn, the first ones of ``X`` (all of them when ``X`` has fewer).
    random_state : int, RandomState instance or None, default=0
        Seeds the ``torch.Generator`` handed to ``views``: an int ``s`` gives the
        views of ``torch.Generator().manual_seed(s)`` (on the task's device).
    fig : matplotlib Figure or SubFigure, default=None
        An empty figure to draw in (a subfigure puts several featurizers on one
        page); a new figure when None.

    Returns
    -------
    fig : matplotlib Figure or SubFigure
        Its axes hold one image each, row by row.

    Raises
    ------
    TypeError
        If ``featurizer`` is not a :class:`~skssl.base.BaseFeaturizer`.
    ValueError
        If ``X`` is not images the featurizer takes (e.g. grayscale images for
        colorization), or ``n`` is not a positive integer.

    See Also
    --------
    plot_reconstructions : what a fitted network reconstructs from those views.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skssl import SimCLRFeaturizer
    >>> from skssl.datasets import load_digits_images
    >>> from skssl.plotting import plot_views
    >>> X, _ = load_digits_images(n_samples=50)
    >>> fig = plot_views(SimCLRFeaturizer(random_state=0), X, n=3)
    >>> len(fig.axes), [ax.get_title() for ax in fig.axes[:3]]
    (9, ['image', 'view a', 'view b'])
    """
    batch, panels = _task_panels(featurizer, X, n, random_state, "view_panels")
    return _draw_panels(featurizer, batch, panels, fig)


def plot_reconstructions(
    featurizer: BaseFeaturizer,
    X: ArrayLike,
    n: int = 4,
    *,
    random_state: int | np.random.RandomState | None = 0,
    fig: Figure | SubFigure | None = None,
) -> Figure | SubFigure:
    """Draw a fitted network's reconstructions of the first ``n`` images of ``X``.

    For the methods that reconstruct their input: the image, what the network sees
    (the corrupted or masked image, the lightness), its reconstruction and the
    target, made by the task's own views and forward pass (in eval mode, without
    gradients; the fitted network is left as it was).

    Parameters
    ----------
    featurizer : BaseFeaturizer
        A fitted featurizer whose task reconstructs: ``DenoisingAEFeaturizer``,
        ``ContextEncoderFeaturizer``, ``MAEFeaturizer``, ``ColorizationFeaturizer``,
        ``SplitBrainFeaturizer``, or one whose task implements
        :meth:`~skssl.task.PretextTask.reconstruction_panels`.
    X : array-like
        Images in the layout and shape seen in ``fit``.
    n : int, default=4
        Images drawn, the first ones of ``X``.
    random_state : int, RandomState instance or None, default=0
        Seeds the views (the corruption, the mask), as in :func:`plot_views`.
    fig : matplotlib Figure or SubFigure, default=None
        An empty figure to draw in; a new figure when None.

    Returns
    -------
    fig : matplotlib Figure or SubFigure
        A row per image: the image, then the task's panels with the reconstruction.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``featurizer`` is not fitted.
    ValueError
        If its task reconstructs nothing (RotNet, SimCLR, ...).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skssl import DenoisingAEFeaturizer
    >>> from skssl.datasets import load_digits_images
    >>> from skssl.plotting import plot_reconstructions
    >>> X, _ = load_digits_images(n_samples=100)
    >>> featurizer = DenoisingAEFeaturizer(max_epochs=1, random_state=0).fit(X)
    >>> fig = plot_reconstructions(featurizer, X, n=2)
    >>> [ax.get_title() for ax in fig.axes[:4]]
    ['image', 'corrupted input', 'reconstruction', 'target: clean']
    """
    _check_featurizer(featurizer)
    check_is_fitted(featurizer, "task_")
    batch, panels = _task_panels(featurizer, X, n, random_state, "reconstruction_panels")
    if panels is None:
        raise ValueError(
            f"{type(featurizer).__name__} does not reconstruct its input: its {type(featurizer.task_).__name__} "
            f"has no reconstruction_panels. Use plot_views to see its pretext task, or a featurizer that "
            f"reconstructs (DenoisingAEFeaturizer, ContextEncoderFeaturizer, MAEFeaturizer, "
            f"ColorizationFeaturizer, SplitBrainFeaturizer)."
        )
    return _draw_panels(featurizer, batch, panels, fig)


def plot_history(estimator: BaseEstimator, *, ax: Axes | None = None) -> Axes:
    """Draw the training loss of every epoch, and the validation score when recorded.

    Parameters
    ----------
    estimator : estimator with a ``history_``
        A fitted featurizer, ``SupervisedClassifier`` or ``FineTunedClassifier``.
        Epochs are numbered across a ``warm_start`` refit; the stages of a
        ``FineTunedClassifier`` are marked.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None. A validation score gets a second
        y axis on its right.

    Returns
    -------
    ax : matplotlib Axes
        The axes of the loss.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If it was fitted for no epoch (``max_epochs=0``).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.plotting import plot_history
    >>> X = load_digits().data[:100]
    >>> ax = plot_history(RotNetFeaturizer(max_epochs=2, random_state=0).fit(X))
    >>> ax.get_lines()[0].get_xdata().tolist()
    [1, 2]
    """
    check_is_fitted(estimator, "history_")
    history = list(estimator.history_)
    if not history:
        raise ValueError(
            f"{type(estimator).__name__}.history_ is empty: it was fitted for no epoch "
            f"(max_epochs=0). Fit it for at least one epoch to plot its history."
        )
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    epochs = np.arange(1, len(history) + 1)
    lines = ax.plot(epochs, [record["loss"] for record in history], marker="o", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.get_major_locator().set_params(integer=True)
    _mark_stages(ax, [record.get("stage") for record in history])
    scored = [
        (epoch, record["validation_score"]) for epoch, record in zip(epochs, history) if "validation_score" in record
    ]
    if scored:
        right = ax.twinx()
        lines += right.plot(*zip(*scored), marker="s", color="C1", label="validation score")
        right.set_ylabel("validation score")
    ax.legend(lines, [line.get_label() for line in lines], fontsize="small")
    ax.set_title(type(estimator).__name__)
    return ax


def plot_embedding(
    featurizer: BaseEstimator,
    X: ArrayLike,
    y: ArrayLike,
    *,
    method: str = "pca",
    random_state: int | np.random.RandomState | None = 0,
    ax: Axes | None = None,
) -> Axes:
    """Draw the features of ``X`` in two dimensions, coloured by ``y``.

    ``featurizer.transform(X)`` is reduced to two dimensions by scikit-learn's
    :class:`~sklearn.decomposition.PCA` or :class:`~sklearn.manifold.TSNE`: images
    whose features are close lie close, and the colours tell whether the classes
    form groups.

    Parameters
    ----------
    featurizer : fitted transformer
        A fitted featurizer (or any fitted transformer of images).
    X : array-like
        Images in the layout and shape seen in ``fit``.
    y : array-like of shape (n_samples,)
        The labels that colour the points; up to 20 classes get a legend, more get
        a colour bar.
    method : {"pca", "tsne"}, default="pca"
        The 2-D map: the first two principal components, or t-SNE (slower; its
        perplexity is capped at a third of the images).
    random_state : int, RandomState instance or None, default=0
        Seeds t-SNE.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib Axes
        A point per image.

    Raises
    ------
    ValueError
        If ``method`` is neither ``"pca"`` nor ``"tsne"``, or ``y`` and ``X`` differ
        in length.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.plotting import plot_embedding
    >>> X, y = load_digits(return_X_y=True)
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X[:100])
    >>> ax = plot_embedding(featurizer, X[:200], y[:200])
    >>> len(ax.collections)  # one group of points per class
    10
    """
    if method not in EMBEDDINGS:
        raise ValueError(f"method={method!r} is not a 2-D map plot_embedding knows; use one of {EMBEDDINGS}.")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one label per image, of shape (n_samples,); got shape {y.shape}.")
    features = featurizer.transform(X)
    check_consistent_length(features, y)
    points, axis_names = _two_dimensions(features, method, random_state)
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) <= 20:
        colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for code, label in enumerate(classes):
            ax.scatter(*points[codes == code].T, s=8, color=colours(code), label=str(label))
        ax.legend(fontsize="small", markerscale=2, loc="best")
    else:
        values = y if np.issubdtype(y.dtype, np.number) else codes
        ax.figure.colorbar(ax.scatter(*points.T, s=8, c=values, cmap="viridis"), ax=ax)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(f"{type(featurizer).__name__} features, {'PCA' if method == 'pca' else 't-SNE'}")
    return ax


def _check_featurizer(featurizer):
    if not isinstance(featurizer, BaseFeaturizer):
        raise TypeError(
            f"Pass a pretext featurizer, a skssl.base.BaseFeaturizer such as RotNetFeaturizer(), "
            f"not {type(featurizer).__name__}: only a featurizer has a pretext task to draw."
        )


def _task_panels(featurizer, X, n, random_state, hook):
    """The [0, 1] batch of the first ``n`` images and what the task's ``hook`` makes
    of its views (``view_panels`` or ``reconstruction_panels``)."""
    task, batch = _task_and_batch(featurizer, X, n)
    seed = random_state if isinstance(random_state, Integral) else check_random_state(random_state).randint(2**31 - 1)
    generator = torch.Generator(batch.device).manual_seed(int(seed))
    training = task.training
    task.eval()  # a forward pass must not move the batch-norm statistics
    try:
        with torch.no_grad():
            inputs, targets = task.views(batch, generator)
            return batch, getattr(task, hook)(batch, inputs, targets)
    finally:
        task.train(training)


def _task_and_batch(featurizer, X, n):
    """The featurizer's pretext task, and the first ``n`` images of ``X`` on [0, 1] on its device.

    An unfitted featurizer's task is built as ``fit`` builds it, for a clone (the
    featurizer stays unfitted) on the CPU.
    """
    _check_featurizer(featurizer)
    if not (isinstance(n, Integral) and n >= 1):
        raise ValueError(f"n is the number of images to draw, a positive integer; got {n!r}.")
    try:
        check_is_fitted(featurizer, "task_")
    except NotFittedError:
        estimator = clone(featurizer).set_params(device="cpu")
        estimator._validate_params()
        setup = prepare_fit(estimator, X, reset=True, image_shape=estimator.image_shape)
        task = estimator._initial_task(setup, setup.seeds[0])  # the model seed, as fit draws it
        images, value_range = setup.images, estimator.value_range_
    else:
        task, value_range = featurizer.task_, featurizer.value_range_
        images = check_images(featurizer, X, reset=False, image_shape=featurizer.image_shape)
    return task, to_unit(to_tensor(images[:n], task.backbone.mean.device), value_range)


def _draw_panels(featurizer, batch, panels, fig):
    """Draw the batch and the panels on a grid: a row per image, a column per panel."""
    plt = _pyplot()
    columns = [ViewPanel("image", batch), *panels]
    if fig is None:
        fig = plt.figure(figsize=(0.3 + 1.3 * len(columns), 0.8 + 1.3 * len(batch)), layout="constrained")
    elif not hasattr(fig, "subplots"):
        raise TypeError(f"fig must be a matplotlib Figure or SubFigure, not {type(fig).__name__}.")
    axes = fig.subplots(len(batch), len(columns), squeeze=False)
    for panel, column in zip(columns, axes.T):
        column[0].set_title(textwrap.fill(panel.title, 16), fontsize="small")
        for row, ax in enumerate(column):
            ax.imshow(_picture(panel.images[row]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if panel.captions is not None:
                ax.set_xlabel(panel.captions[row], fontsize="x-small")
    fig.suptitle(_describe(featurizer, width=max(30, 16 * len(columns))), fontsize="medium")
    return fig


def _picture(image: torch.Tensor) -> np.ndarray:
    """A panel's ``(C, H, W)`` image as ``imshow`` draws it, clipped to [0, 1]: ``(H, W)``
    gray, or ``(H, W, 3 or 4)`` colour; other channel counts show their mean."""
    array = image.detach().float().clamp(0, 1).cpu().numpy()
    if len(array) in (3, 4):
        return array.transpose(1, 2, 0)
    return array[0] if len(array) == 1 else array.mean(axis=0)


def _describe(featurizer, width):
    """The featurizer's name, and its registered pretext task in words, wrapped to ``width``."""
    name = type(featurizer).__name__
    method = next((method for method in METHODS.values() if method.estimator is type(featurizer)), None)
    return name if method is None else textwrap.fill(f"{name}: {method.task}", width)


def _mark_stages(ax, stages):
    """A dashed line where each named stage of a history begins, and its name."""
    for epoch, stage in enumerate(stages):
        if stage is not None and (epoch == 0 or stages[epoch - 1] != stage):
            if epoch:
                ax.axvline(epoch + 0.5, color="0.6", linestyle="--", linewidth=1)
            ax.text(epoch + 1, 0.98, f" {stage}", transform=ax.get_xaxis_transform(), va="top", fontsize="x-small")


def _two_dimensions(features, method, random_state) -> tuple[np.ndarray, list]:
    """``features`` mapped to 2-D by ``method``, and the names of its two axes."""
    if method == "pca":
        pca = PCA(n_components=2)
        points = pca.fit_transform(features)
        return points, [
            f"PC {i + 1} ({ratio:.0%} of the variance)" for i, ratio in enumerate(pca.explained_variance_ratio_)
        ]
    perplexity = min(30.0, max(1.0, (len(features) - 1) / 3))  # TSNE wants fewer neighbours than images
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state)
    return tsne.fit_transform(features), ["t-SNE 1", "t-SNE 2"]
