"""How good are the features? Probes, per-layer tables and label-efficiency curves.

The probes take an already fitted featurizer and never refit nor change it: the
labels only ever train a probe on top of frozen features.

- :func:`linear_probe`: standardised features, logistic regression, test accuracy;
  :func:`pixel_probe` is the same on raw pixels.
- :func:`knn_probe`: weighted k-nearest-neighbour vote on cosine similarity [1]_ [2]_.
- :func:`layerwise_probe`: a probe on every backbone stage.
- :func:`random_twin`: the featurizer's network from random weights, read the same
  way: the baseline a pretext task must beat.
- :func:`fine_tune_probe`: the featurizer's network fine-tuned on the labels (and
  taught by the unlabeled images, when given), test accuracy.
- :func:`label_efficiency`: accuracy against the number of labels, next to random
  features, supervised networks, fine-tuning, raw pixels and scikit-learn's own
  semi-supervised estimators.
- :func:`plot_label_efficiency`, :func:`plot_layerwise`: their figures (matplotlib).

References
----------
.. [1] Wu, Xiong, Yu & Lin, "Unsupervised Feature Learning via Non-Parametric
   Instance Discrimination", CVPR 2018, arXiv:1805.01978.
.. [2] Caron et al., "Emerging Properties in Self-Supervised Vision Transformers"
   (DINO), ICCV 2021, arXiv:2104.14294.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

BASELINES = ("random", "supervised", "pixels")
SEMI_SUPERVISED_BASELINES = (
    "fine_tuned",  # FineTunedClassifier on the featurizer, the other training images unlabeled
    "supervised_augmented",  # the same network from its random weights, labels only
    "supervised_semi_supervised",  # ... and then the same semi-supervised stage
    "self_training_pixels",  # SelfTrainingClassifier(LogisticRegression) on raw pixels
    "label_spreading_pixels",  # LabelSpreading(kernel="knn") on raw pixels
)


def linear_probe(
    featurizer: BaseEstimator,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
) -> float:
    """Test accuracy of a logistic regression on frozen features.

    The features of ``X_train`` are standardised and a multinomial logistic
    regression is fitted on them; the featurizer itself is not refitted.

    Parameters
    ----------
    featurizer : fitted transformer
        Any fitted transformer, usually an skssl featurizer.
    X_train, X_test : array-like
        Labelled training and test images, in the layout the featurizer takes.
    y_train, y_test : array-like of shape (n_train,) and (n_test,)
        Their labels.
    C : float, default=1.0
        Inverse regularisation strength of the logistic regression.
    max_iter : int, default=1000
        Iterations of its solver.

    Returns
    -------
    accuracy : float
        Fraction of test images classified correctly.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.evaluation import linear_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X[:100])
    >>> accuracy = linear_probe(featurizer, X[:100], y[:100], X[100:200], y[100:200])
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    check_is_fitted(featurizer)
    train_features, test_features = featurizer.transform(X_train), featurizer.transform(X_test)
    return _linear_accuracy(train_features, y_train, test_features, y_test, C=C, max_iter=max_iter)


def pixel_probe(
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
) -> float:
    """Test accuracy of the same logistic-regression probe on raw pixels.

    Parameters
    ----------
    X_train, X_test : array-like
        Images of any layout; each is flattened to one row of pixels.
    y_train, y_test : array-like
        Their labels.
    C : float, default=1.0
        Inverse regularisation strength.
    max_iter : int, default=1000
        Iterations of the solver.

    Returns
    -------
    accuracy : float

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.evaluation import pixel_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> accuracy = pixel_probe(X[:500], y[:500], X[500:], y[500:])
    >>> accuracy > 0.85
    True
    """
    return _linear_accuracy(_flat(X_train), y_train, _flat(X_test), y_test, C=C, max_iter=max_iter)


def knn_probe(
    featurizer: BaseEstimator,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    *,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    """Test accuracy of a weighted k-nearest-neighbour vote on frozen features.

    The protocol of [1]_ and [2]_: features are L2-normalised, the ``k`` training
    images most similar (cosine) to a test image vote for their class, each with
    weight ``exp(similarity / temperature)``, and the class with the most weight wins.

    Parameters
    ----------
    featurizer : fitted transformer
        Any fitted transformer, usually an skssl featurizer.
    X_train, X_test : array-like
        Labelled training and test images.
    y_train, y_test : array-like
        Their labels.
    k : int, default=200
        Neighbours per test image; at most the number of training images.
    temperature : float, default=0.1
        Sharpness of the vote: small values let the nearest neighbours dominate.

    Returns
    -------
    accuracy : float

    References
    ----------
    .. [1] Wu et al., CVPR 2018, arXiv:1805.01978, section 3.4.
    .. [2] Caron et al. (DINO), ICCV 2021, arXiv:2104.14294, "k-NN classification".

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.evaluation import knn_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X[:100])
    >>> accuracy = knn_probe(featurizer, X[:100], y[:100], X[100:200], y[100:200], k=10)
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    check_is_fitted(featurizer)
    train_features, test_features = featurizer.transform(X_train), featurizer.transform(X_test)
    return _knn_accuracy(train_features, y_train, test_features, y_test, k=k, temperature=temperature)


def fine_tune_probe(
    featurizer: BaseEstimator,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    *,
    X_unlabeled: ArrayLike | None = None,
    **classifier_params: Any,
) -> float:
    """Test accuracy of the featurizer's network fine-tuned on the labelled images.

    A :class:`~skssl.FineTunedClassifier` over the fitted featurizer (wrapped in
    :class:`~sklearn.frozen.FrozenEstimator`: no pretext refit, the featurizer is not
    changed) is trained on ``X_train`` and, for its semi-supervised stage, the
    unlabeled images ``X_unlabeled``.

    Parameters
    ----------
    featurizer : fitted skssl featurizer
        The pretext-trained network to fine-tune.
    X_train, X_test : array-like
        Labelled training and test images.
    y_train, y_test : array-like
        Their labels.
    X_unlabeled : array-like, default=None
        Images without labels, for the semi-supervised stage.
    **classifier_params : dict
        :class:`~skssl.FineTunedClassifier` parameters, e.g. ``max_epochs=50``.

    Returns
    -------
    accuracy : float

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.evaluation import fine_tune_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X[:300])
    >>> accuracy = fine_tune_probe(featurizer, X[:100], y[:100], X[300:400], y[300:400],
    ...                            X_unlabeled=X[100:300], max_epochs=2,
    ...                            semi_supervised_epochs=1, random_state=0)
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    from sklearn.frozen import FrozenEstimator

    from .transfer import FineTunedClassifier

    check_is_fitted(featurizer)
    X, y = _with_unlabeled(X_train, y_train, X_unlabeled)
    classifier = FineTunedClassifier(FrozenEstimator(featurizer), **classifier_params).fit(X, y)
    return float(classifier.score(X_test, y_test))


def _with_unlabeled(X_labeled, y_labeled, X_unlabeled):
    """Labelled and unlabeled images as one training set, ``-1`` for the unlabeled."""
    X_labeled, y_labeled = np.asarray(X_labeled), np.asarray(y_labeled, dtype=object)
    if X_unlabeled is None or len(X_unlabeled) == 0:
        return X_labeled, _tidy_labels(y_labeled)
    X = np.concatenate([X_labeled, np.asarray(X_unlabeled, dtype=X_labeled.dtype)])
    y = np.concatenate([y_labeled, np.full(len(X_unlabeled), -1, dtype=object)])
    return X, _tidy_labels(y)


def _tidy_labels(y):
    """Integer labels as integers again; others (strings) stay objects beside -1."""
    try:
        return y.astype(np.int64) if all(isinstance(v, (int, np.integer)) for v in y) else y
    except (TypeError, ValueError):
        return y


def random_twin(featurizer: BaseEstimator, X: ArrayLike, *, random_state: Any = None) -> BaseEstimator:
    """The same network with random initial weights, read the same way, fitted on ``X``.

    A :class:`~skssl.RandomFeaturizer` with the featurizer's backbone, read at its
    ``layer_`` and pooled as its ``pool_``; for a featurizer that reads its features
    its own way (:class:`~skssl.CPCFeaturizer`'s grid of patches), the featurizer itself
    with ``max_epochs=0``. ``featurizer`` is not changed.

    Parameters
    ----------
    featurizer : fitted featurizer
        The pretext-trained featurizer.
    X : array-like
        Images to fit the twin on (its input standardisation), as ``featurizer`` was.
    random_state : int, RandomState instance or None, default=None
        Seeds the random weights.

    Returns
    -------
    twin : fitted featurizer
        Its ``transform`` gives as many features as ``featurizer``'s.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.evaluation import linear_probe, random_twin
    >>> X, y = load_digits(return_X_y=True)
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X[:500])
    >>> twin = random_twin(featurizer, X[:500], random_state=0)
    >>> twin.transform(X[:3]).shape == featurizer.transform(X[:3]).shape
    True
    """
    from .baselines import RandomFeaturizer

    check_is_fitted(featurizer)
    if getattr(featurizer, "readout", "image") != "image":
        return clone(featurizer).set_params(max_epochs=0, random_state=random_state).fit(X)
    params = featurizer.get_params(deep=False)
    shared = {key: params[key] for key in ("backbone", "backbone_kwargs", "device", "image_shape") if key in params}
    return RandomFeaturizer(**shared, layer=featurizer.layer_, pool=featurizer.pool_, random_state=random_state).fit(X)


def layerwise_probe(
    featurizer: BaseEstimator,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    *,
    probe: str = "linear",
) -> pd.DataFrame | list[dict[str, Any]]:
    """Probe the features of every backbone stage, not only the featurizer's ``layer``.

    Which stage holds the most useful features depends on the pretext task:
    rotation features peak before the last stage, reconstruction features often
    early. The featurizer is read, never changed.

    Parameters
    ----------
    featurizer : fitted skssl featurizer
        Its ``task_.backbone`` gives the stages.
    X_train, X_test : array-like
        Labelled training and test images.
    y_train, y_test : array-like
        Their labels.
    probe : {"linear", "knn"}, default="linear"
        :func:`linear_probe` or :func:`knn_probe` with their defaults.

    Returns
    -------
    table : DataFrame or list of dict
        One row per stage, in network order, with columns ``layer``, ``n_features``
        and ``accuracy``; a list of dicts when pandas is not installed.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.evaluation import layerwise_probe
    >>> X, y = load_digits(return_X_y=True)
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X[:100])
    >>> table = layerwise_probe(featurizer, X[:100], y[:100], X[100:200], y[100:200])
    >>> len(table)
    3
    """
    if probe not in ("linear", "knn"):
        raise ValueError(f"probe must be 'linear' or 'knn', got {probe!r}.")
    check_is_fitted(featurizer)
    accuracy_of = _linear_accuracy if probe == "linear" else _knn_accuracy
    rows = []
    for name in featurizer.task_.backbone.stage_names:
        train_features = featurizer.embed(X_train, layer=name)
        test_features = featurizer.embed(X_test, layer=name)
        accuracy = accuracy_of(train_features, y_train, test_features, y_test)
        rows.append({"layer": name, "n_features": train_features.shape[1], "accuracy": accuracy})
    return _table(rows)


def label_efficiency(
    featurizer: BaseEstimator,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    *,
    n_labels: Sequence[int | None] = (10, 20, 50, 100, 500, 1000, None),
    baselines: Sequence[str] = BASELINES,
    supervised_params: dict[str, Any] | None = None,
    classifier_params: dict[str, Any] | None = None,
    random_state: int | np.random.RandomState | None = 0,
) -> pd.DataFrame | list[dict[str, Any]]:
    """Accuracy against the number of labels: the linear probe, fine-tuning, baselines.

    For each size ``n`` a subset of ``n`` labelled training images is drawn (one
    per class first, where ``n`` allows, then at random; the subsets are nested)
    and each method is scored on the whole test set. The semi-supervised rows use
    the other training images as unlabeled ones:

    - the featurizer: :func:`linear_probe` on its frozen features;
    - ``"random"``: the same probe on a :class:`~skssl.baselines.RandomFeaturizer`
      with the featurizer's backbone, layer and pooling, fitted on ``X_train``
      (with an integer ``random_state``: the very weights the featurizer's
      pretext training started from);
    - ``"supervised"``: a :class:`~skssl.baselines.SupervisedClassifier` with the
      same backbone, trained end to end on the ``n`` labels;
    - ``"pixels"``: the same probe on raw pixels;
    - ``"fine_tuned"``: :func:`fine_tune_probe`, a
      :class:`~skssl.FineTunedClassifier` over the featurizer (not refitted) with
      ``classifier_params``;
    - ``"supervised_augmented"``: the same classifier over the same network at its
      random initial weights (the featurizer's clone with ``max_epochs=0``) without
      the semi-supervised stage: same network, augmentation and labels, no pretext;
    - ``"supervised_semi_supervised"``: that, with the semi-supervised stage;
    - ``"self_training_pixels"``: scikit-learn's
      :class:`~sklearn.semi_supervised.SelfTrainingClassifier` around the
      logistic-regression probe, on raw pixels;
    - ``"label_spreading_pixels"``: scikit-learn's
      :class:`~sklearn.semi_supervised.LabelSpreading` (``kernel="knn"``) on raw
      pixels scaled to [0, 1].

    Parameters
    ----------
    featurizer : fitted skssl featurizer
        The features to evaluate; never refitted.
    X_train, X_test : array-like
        Training images (the labelled pool) and test images.
    y_train, y_test : array-like
        Their labels.
    n_labels : sequence of int or None, default=(10, 20, 50, 100, 500, 1000, None)
        Numbers of labelled images (at least 2); ``None`` means all of ``X_train``.
        Sizes above ``len(X_train)`` are skipped.
    baselines : sequence of str, default=("random", "supervised", "pixels")
        The rows to add to the featurizer's: any of ``"random"``, ``"supervised"``,
        ``"pixels"`` and of the semi-supervised rows ``"fine_tuned"``,
        ``"supervised_augmented"``, ``"supervised_semi_supervised"``,
        ``"self_training_pixels"``, ``"label_spreading_pixels"``
        (``skssl.evaluation.SEMI_SUPERVISED_BASELINES``).
    supervised_params : dict, default=None
        Further :class:`~skssl.baselines.SupervisedClassifier` parameters, e.g.
        ``{"max_epochs": 10}``; backbone, pooling, device and image shape come
        from the featurizer.
    classifier_params : dict, default=None
        :class:`~skssl.FineTunedClassifier` parameters of the ``"fine_tuned"`` and
        ``"supervised_*"`` rows (all three get the same).
    random_state : int, RandomState instance or None, default=0
        Seeds the subsets, and the baselines' weights when the featurizer has no
        integer ``random_state``.

    Returns
    -------
    table : DataFrame or list of dict
        Columns ``n_labels``, ``method`` and ``accuracy``; ``method`` is the
        featurizer's class name or a baseline's name. A list of dicts when pandas
        is not installed.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.evaluation import label_efficiency
    >>> X, y = load_digits(return_X_y=True)
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X[:200])
    >>> table = label_efficiency(featurizer, X[:200], y[:200], X[200:400], y[200:400],
    ...                          n_labels=(20, None), baselines=("random", "pixels"))
    >>> len(table)
    6
    """
    from .baselines import SupervisedClassifier

    check_is_fitted(featurizer)
    unknown = set(baselines) - set(BASELINES + SEMI_SUPERVISED_BASELINES)
    if unknown:
        raise ValueError(f"Unknown baselines {sorted(unknown)}; choose from {BASELINES + SEMI_SUPERVISED_BASELINES}.")
    sizes = _label_sizes(n_labels, len(y_train))
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    rng = check_random_state(random_state)
    order = _labelled_order(y_train, rng)
    params = featurizer.get_params(deep=False)
    seed = params.get("random_state")
    seed = seed if isinstance(seed, Integral) else rng.randint(2**31 - 1)  # baselines' weights
    shared = {key: params[key] for key in ("backbone", "backbone_kwargs", "device", "image_shape") if key in params}

    name = type(featurizer).__name__
    features = {name: (featurizer.transform(X_train), featurizer.transform(X_test))}
    if "random" in baselines:
        untrained = random_twin(featurizer, X_train, random_state=seed)
        features["random"] = (untrained.transform(X_train), untrained.transform(X_test))
    if "pixels" in baselines:
        features["pixels"] = (_flat(X_train), _flat(X_test))
    supervised = SupervisedClassifier(**shared, pool=params.get("pool", "auto"), random_state=seed)
    supervised.set_params(**(supervised_params or {}))
    semi_supervised = _semi_supervised_rows(
        featurizer,
        X_train,
        X_test,
        y_test,
        classifier_params,
        seed,
        [method for method in baselines if method in SEMI_SUPERVISED_BASELINES],
    )

    rows = []
    for n in sizes:
        labelled = order[:n]
        for method in dict.fromkeys([name, *baselines]):
            if method == "supervised":
                batch_size = min(supervised.batch_size, n)  # 10 labels: batches of 10
                classifier = clone(supervised).set_params(batch_size=batch_size)
                classifier.fit(_take(X_train, labelled), y_train[labelled])
                accuracy = classifier.score(X_test, y_test)
            elif method in semi_supervised:
                y_partial = np.full(len(y_train), -1, dtype=object)
                y_partial[labelled] = y_train[labelled]
                accuracy = semi_supervised[method](_tidy_labels(y_partial))
            else:
                train_features, test_features = features[method]
                accuracy = _linear_accuracy(train_features[labelled], y_train[labelled], test_features, y_test)
            rows.append({"n_labels": n, "method": method, "accuracy": float(accuracy)})
    return _table(rows)


def _semi_supervised_rows(featurizer, X_train, X_test, y_test, classifier_params, seed, methods):
    """``{method: accuracy(y_partial)}``: each semi-supervised row as a function of the
    training labels, ``-1`` where unlabeled."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    from .transfer import FineTunedClassifier

    params = {"random_state": seed, **(classifier_params or {})}
    pixels_train, pixels_test = _flat(X_train), _flat(X_test)
    low, high = float(pixels_train.min()), float(pixels_train.max())
    scaled_train, scaled_test = (pixels_train - low) / (high - low or 1), (pixels_test - low) / (high - low or 1)
    rows = {}
    if "fine_tuned" in methods:
        tuned = FineTunedClassifier(FrozenEstimator(featurizer), **params)
        rows["fine_tuned"] = lambda y: tuned.fit(X_train, y).score(X_test, y_test)
    if {"supervised_augmented", "supervised_semi_supervised"} & set(methods):
        untrained = FrozenEstimator(clone(featurizer).set_params(max_epochs=0).fit(X_train))
        alone = FineTunedClassifier(untrained, **{**params, "semi_supervised": None})
        rows["supervised_augmented"] = lambda y: alone.fit(X_train, y).score(X_test, y_test)
        taught = FineTunedClassifier(untrained, **params)
        rows["supervised_semi_supervised"] = lambda y: taught.fit(X_train, y).score(X_test, y_test)
    if "self_training_pixels" in methods:
        self_training = SelfTrainingClassifier(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)))
        rows["self_training_pixels"] = lambda y: self_training.fit(pixels_train, y).score(pixels_test, y_test)
    if "label_spreading_pixels" in methods:
        spreading = LabelSpreading(kernel="knn")
        rows["label_spreading_pixels"] = lambda y: spreading.fit(scaled_train, y).score(scaled_test, y_test)
    return rows


def plot_label_efficiency(table: pd.DataFrame | Sequence[dict[str, Any]], ax: Axes | None = None) -> Axes:
    """Draw accuracy against the number of labels, one line per method.

    Parameters
    ----------
    table : DataFrame or list of dict
        The output of :func:`label_efficiency`.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> table = [{"n_labels": 10, "method": "pixels", "accuracy": 0.5},
    ...          {"n_labels": 100, "method": "pixels", "accuracy": 0.8}]
    >>> ax = plot_label_efficiency(table)  # doctest: +SKIP
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    records = _records(table)
    for method in dict.fromkeys(row["method"] for row in records):  # first-seen order
        points = sorted((row["n_labels"], row["accuracy"]) for row in records if row["method"] == method)
        ax.plot(*zip(*points), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def plot_layerwise(table: pd.DataFrame | Sequence[dict[str, Any]], ax: Axes | None = None) -> Axes:
    """Draw probe accuracy per backbone stage as bars, labelled with feature counts.

    Parameters
    ----------
    table : DataFrame or list of dict
        The output of :func:`layerwise_probe`.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> table = [{"layer": "conv1", "n_features": 256, "accuracy": 0.7},
    ...          {"layer": "conv2", "n_features": 128, "accuracy": 0.8}]
    >>> ax = plot_layerwise(table)  # doctest: +SKIP
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    records = _records(table)
    bars = ax.bar([row["layer"] for row in records], [row["accuracy"] for row in records])
    ax.bar_label(bars, labels=[f"{row['n_features']} feat." for row in records], fontsize="small")
    ax.set_xlabel("backbone stage")
    ax.set_ylabel("probe accuracy")
    ax.set_ylim(0, 1.1)
    return ax


def _knn_predict(train_features, train_labels, test_features, k, temperature, chunk_size=None):
    """Weighted k-NN labels of ``test_features``: cosine top-k, votes ``exp(sim / T)``.

    Ties go to the class that sorts first. The test set is processed in chunks of
    ``chunk_size`` rows (by default, about 16M similarities at a time).
    """
    train_features, test_features = _normalize(train_features), _normalize(test_features)
    classes, train_codes = np.unique(np.asarray(train_labels), return_inverse=True)
    n_train, n_classes = len(train_features), len(classes)
    k = min(int(k), n_train)
    chunk_size = chunk_size or max(1, 2**24 // n_train)
    predictions = []
    for start in range(0, len(test_features), chunk_size):
        similarity = test_features[start : start + chunk_size] @ train_features.T  # (m, n_train)
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]  # (m, k), unordered
        top = np.take_along_axis(similarity, nearest, axis=1).astype(np.float64)
        # exp((s - max) / T) is proportional to exp(s / T) per row, and cannot overflow.
        weights = np.exp((top - top.max(axis=1, keepdims=True)) / temperature)  # (m, k)
        cells = np.arange(len(top))[:, None] * n_classes + train_codes[nearest]  # (m, k)
        votes = np.bincount(cells.ravel(), weights.ravel(), minlength=len(top) * n_classes)
        predictions.append(votes.reshape(len(top), n_classes).argmax(axis=1))
    return classes[np.concatenate(predictions)]


def _knn_accuracy(train_features, y_train, test_features, y_test, *, k=200, temperature=0.1):
    if not (isinstance(k, Integral) and k >= 1) or not temperature > 0:
        raise ValueError(
            f"k must be a positive integer and temperature positive; got k={k!r}, temperature={temperature!r}."
        )
    predicted = _knn_predict(train_features, y_train, test_features, k, temperature)
    return float(np.mean(predicted == np.asarray(y_test)))


def _linear_accuracy(train_features, y_train, test_features, y_test, *, C=1.0, max_iter=1000):
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    return float(probe.fit(train_features, y_train).score(test_features, y_test))


def _normalize(features):
    features = np.asarray(features)
    features = features.astype(np.result_type(features.dtype, np.float32), copy=False)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _labelled_order(y, rng):
    """A random order of the rows with one row of each class first: its prefixes are
    nested subsets that hold as many classes as their size allows."""
    permutation = rng.permutation(len(y))
    _, first = np.unique(y[permutation], return_index=True)
    firsts = np.sort(first)  # one row per class, classes in random order
    rest = np.setdiff1d(np.arange(len(y)), firsts, assume_unique=True)
    return permutation[np.concatenate([firsts, rest])]


def _label_sizes(n_labels, n_train):
    sizes = []
    for n in n_labels:
        if n is not None and not (isinstance(n, Integral) and n >= 2):
            raise ValueError(f"n_labels holds {n!r}; use integers of at least 2, or None for all.")
        n = n_train if n is None else int(n)
        if n <= n_train and n not in sizes:
            sizes.append(n)
    return sizes


def _flat(X):
    X = np.asarray(X)
    return X.reshape(len(X), -1)


def _take(X, rows):
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def _table(rows):
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def _records(table):
    return table.to_dict("records") if hasattr(table, "to_dict") else list(table)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('Plotting needs matplotlib: pip install "skssl[plot]" (or pip install matplotlib).') from exc
    return plt
