"""Scoring semi-supervised models: scorers that skip unlabeled rows (``y == -1``).

A grid search over a semi-supervised pipeline splits labeled and unlabeled rows
alike, so its test folds hold unlabeled rows too. A plain scorer would count a
prediction against the label -1 as an error; :func:`labeled_scorer` scores the
labeled rows only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.metrics import get_scorer
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _check_method_params, column_or_1d

from .semi_supervised import label_array, labeled_mask


class LabeledScorer:
    """A scorer that drops the rows with ``y == -1`` before calling ``scorer``.

    Made by :func:`labeled_scorer`; a module-level class, so it pickles for
    ``GridSearchCV(n_jobs=...)``.
    """

    def __init__(self, scorer: Callable[..., float]) -> None:
        self.scorer = scorer

    def __call__(self, estimator: BaseEstimator, X: ArrayLike, y: ArrayLike, **kwargs: Any) -> float:
        y = column_or_1d(label_array(y))
        labeled = np.flatnonzero(labeled_mask(y))
        if len(labeled) == 0:
            raise ValueError(
                "Cannot score: every row of this split is unlabeled (y == -1). Use a "
                "stratified splitter (the default for classifiers) or more labels."
            )
        kwargs = _check_method_params(X, kwargs, indices=labeled)
        return self.scorer(estimator, _safe_indexing(X, labeled), y[labeled], **kwargs)

    def __repr__(self) -> str:
        return f"labeled_scorer({self.scorer!r})"


def labeled_scorer(scoring: str | Callable[..., float] = "accuracy") -> LabeledScorer:
    """A scorer that ignores unlabeled rows (``y == -1``), for ``GridSearchCV`` and co.

    Parameters
    ----------
    scoring : str or callable, default="accuracy"
        A scikit-learn scorer name (``"accuracy"``, ``"balanced_accuracy"``,
        ``"f1_macro"``, ``"neg_log_loss"``, ...) or a scorer callable
        ``scorer(estimator, X, y)``, such as one made by
        :func:`sklearn.metrics.make_scorer`.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, **kwargs)``: ``scoring`` on the rows whose ``y`` is
        not -1 (keyword arguments with one value per row, such as
        ``sample_weight``, are restricted to those rows too). It raises a
        ``ValueError`` when no row is labeled, which a search records as a failed
        split.

    See Also
    --------
    skssl.semi_supervised.LabeledOnly : fits a classifier on the labeled rows.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skssl.metrics import labeled_scorer
    >>> from skssl.semi_supervised import LabeledOnly
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:300] / 16, y[:300].copy()
    >>> y[100:] = -1  # 100 labeled rows, 200 unlabeled
    >>> search = GridSearchCV(
    ...     LabeledOnly(LogisticRegression(max_iter=1000)),
    ...     {"estimator__C": [0.1, 1.0]},
    ...     scoring=labeled_scorer("balanced_accuracy"),
    ...     cv=3,
    ... ).fit(X, y)
    >>> print(f"{search.best_params_}, balanced accuracy {search.best_score_:.2f}")
    {'estimator__C': 1.0}, balanced accuracy 0.95
    """
    scorer = get_scorer(scoring) if isinstance(scoring, str) else scoring
    if not callable(scorer):
        raise ValueError(
            f"scoring must be a scorer name such as 'accuracy' or a callable scorer(estimator, X, y); got {scoring!r}."
        )
    return LabeledScorer(scorer)
