"""Semi-supervised pipelines: pretext-train on every row, fit the classifier on the labeled ones.

scikit-learn marks an unlabeled row with ``y == -1`` (as
:class:`~sklearn.semi_supervised.SelfTrainingClassifier` does). In a
:class:`~sklearn.pipeline.Pipeline` every step's ``fit`` sees the same rows, so a
featurizer followed by :class:`LabeledOnly` pretext-trains on all the images of a
fold, labeled or not, while the classifier only ever sees the labeled ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_method_params,
    _estimator_has,
    _num_samples,
    check_is_fitted,
    column_or_1d,
)

UNLABELED = -1


def label_array(y: ArrayLike) -> np.ndarray:
    """``y`` as a NumPy array in which an unlabeled row's ``-1`` stays a number.

    A list or tuple that mixes strings and ``-1`` (``["cat", -1, "dog"]``) becomes an
    object array, not the string array ``["cat", "-1", "dog"]`` that ``np.asarray``
    would make of it; every other container goes through ``np.asarray``.

    Examples
    --------
    >>> label_array(["cat", -1, "dog"])
    array(['cat', -1, 'dog'], dtype=object)
    """
    array = np.asarray(y)
    if isinstance(y, (list, tuple)) and array.dtype.kind in "US":
        array = np.asarray(y, dtype=object)
    return array


def _string_minus_one(y):
    """Boolean mask of the values of ``y`` that are the string ``"-1"`` (or bytes)."""
    if y.dtype.kind in "US":
        return y == y.dtype.type("-1")
    if y.dtype.kind == "O":
        strings = (isinstance(value, (str, bytes)) and value in ("-1", b"-1") for value in y.flat)
        return np.fromiter(strings, bool, y.size).reshape(y.shape)
    return np.zeros(y.shape, dtype=bool)


def labeled_mask(y: ArrayLike) -> np.ndarray:
    """Boolean mask of the rows of ``y`` that carry a label (``y != -1``).

    The one place that decides what is unlabeled, for every container ``y`` comes
    in (see :func:`label_array`).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Targets, with ``-1`` for unlabeled rows: a list, an integer, float or object
        array, a pandas Series. A string array cannot hold the integer ``-1``, so its
        rows all count as labeled; the string ``"-1"``, in any container, is refused,
        as it cannot be told from a class named "-1".

    Returns
    -------
    mask : ndarray of shape (n_samples,), dtype bool

    Raises
    ------
    ValueError
        If ``y`` holds the string ``"-1"``. Mark unlabeled rows with the integer
        ``-1`` in a list or an object array, or encode the classes as integers.

    Examples
    --------
    >>> from skssl.semi_supervised import labeled_mask
    >>> labeled_mask([3, -1, 0, -1])
    array([ True, False,  True, False])
    >>> labeled_mask(["cat", -1, "dog", -1])
    array([ True, False,  True, False])
    """
    y = label_array(y)
    strings = _string_minus_one(y)
    if strings.any():
        rows = np.flatnonzero(strings.ravel())
        raise ValueError(
            f'y holds the string "-1" in {len(rows)} row(s) (the first is row {rows[0]}), which cannot '
            f'be told from a class named "-1". Mark unlabeled rows with the integer -1: pass a list or an '
            f'object array (np.array(["cat", -1], dtype=object)), or encode the classes as integers.'
        )
    if y.dtype.kind in "US":
        return np.ones(y.shape, dtype=bool)
    return np.asarray(y != UNLABELED, dtype=bool)


def _rows(X, indices):
    """The rows ``indices`` of ``X``: an array, DataFrame, list or sparse matrix."""
    if sp.issparse(X) and X.format not in ("csr", "csc"):
        X = X.tocsr()  # COO, DIA, ... cannot select rows
    elif not hasattr(X, "shape") and hasattr(X, "__array__"):
        X = np.asarray(X)  # array-likes that only convert
    return _safe_indexing(X, indices)


class LabeledOnly(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit a classifier on the labeled rows only (``y != -1``).

    The last step of a semi-supervised pipeline: the steps before it (a
    featurizer, a scaler) are fitted on every row of ``X``, labeled or not, and
    this step fits a clone of ``estimator`` on the rows whose label is not -1.
    Prediction methods delegate to that fitted clone; :meth:`score` ignores
    unlabeled rows. For scorers that should ignore them too, see
    :func:`skssl.metrics.labeled_scorer`.

    Parameters
    ----------
    estimator : classifier
        Any scikit-learn classifier; it is cloned, never fitted in place.

    Attributes
    ----------
    estimator_ : classifier
        The clone of ``estimator`` fitted on the labeled rows.
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit`` (never -1).
    n_labeled_ : int
        Labeled rows seen in ``fit``.
    n_features_in_ : int
        Features seen by ``estimator_`` in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Their names, when ``X`` was a DataFrame with string column names.

    See Also
    --------
    sklearn.semi_supervised.SelfTrainingClassifier : also fits on the unlabeled
        rows, through its own confident predictions.
    skssl.metrics.labeled_scorer : a scorer that ignores unlabeled rows.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from skssl import RotNetFeaturizer
    >>> from skssl.semi_supervised import LabeledOnly
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:100], y[:100].copy()
    >>> y[30:] = -1  # only the first 30 images are labeled
    >>> pipe = make_pipeline(
    ...     RotNetFeaturizer(max_epochs=1, random_state=0),  # pretext-trains on all 100
    ...     LabeledOnly(LogisticRegression(max_iter=1000)),  # fits on the 30 labeled
    ... ).fit(X, y)
    >>> pipe[-1].n_labeled_, pipe.classes_.tolist()
    (30, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    >>> pipe.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {"estimator": [HasMethods(["fit", "predict"])]}

    def __init__(self, estimator: BaseEstimator) -> None:
        self.estimator = estimator

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ArrayLike, y: ArrayLike, **fit_params: Any) -> LabeledOnly:
        """Fit a clone of ``estimator`` on the rows of ``X`` whose ``y`` is not -1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows, in any form ``estimator`` takes.
        y : array-like of shape (n_samples,)
            Labels, ``-1`` for unlabeled rows.
        **fit_params : dict
            Passed to ``estimator.fit``; those with one value per row (such as
            ``sample_weight``) are restricted to the labeled rows.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = column_or_1d(label_array(y), warn=True)
        if _num_samples(X) != len(y):
            raise ValueError(f"X has {_num_samples(X)} rows but y has {len(y)} labels; pass one label (or -1) per row.")
        labeled = np.flatnonzero(labeled_mask(y))
        if len(labeled) == 0:
            raise ValueError(
                f"{type(self).__name__} got no labeled rows: all {len(y)} values of y are "
                f"-1 (unlabeled). Label at least one row of every class."
            )
        check_classification_targets(y[labeled])
        params = _check_method_params(X, fit_params, indices=labeled)
        self.estimator_ = clone(self.estimator).fit(_rows(X, labeled), y[labeled], **params)
        self.n_labeled_ = len(labeled)
        return self

    @property
    def classes_(self) -> np.ndarray:
        """The labels seen in ``fit``."""
        check_is_fitted(self)
        return self.estimator_.classes_

    @property
    def n_features_in_(self) -> int:
        """Features seen by the fitted estimator."""
        # AttributeError before fit, so that hasattr tells whether it is fitted
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Column names seen by the fitted estimator."""
        return self.estimator_.feature_names_in_

    @available_if(_estimator_has("predict"))
    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predict with the classifier fitted on the labeled rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Decision scores of the classifier fitted on the labeled rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Accuracy on the labeled rows of ``X``; rows with ``y == -1`` are ignored.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            True labels, ``-1`` for rows to ignore.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
            Mean accuracy over the labeled rows.
        """
        check_is_fitted(self)
        y = column_or_1d(label_array(y))
        labeled = np.flatnonzero(labeled_mask(y))
        if len(labeled) == 0:
            raise ValueError(
                "Cannot score on rows that are all unlabeled (y == -1); score on data with at least one label."
            )
        if sample_weight is not None:
            sample_weight = _safe_indexing(sample_weight, labeled)
        return super().score(_rows(X, labeled), y[labeled], sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.pairwise = inner.input_tags.pairwise
        return tags
