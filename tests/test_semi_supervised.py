"""LabeledOnly and labeled_scorer: the featurizer pretext-trains on every row, the
classifier and the score see the labeled ones (y != -1) only. (scikit-learn's checks
of LabeledOnly are in test_common.py.)"""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, make_scorer
from sklearn.model_selection import GridSearchCV, check_cv, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.semi_supervised import SelfTrainingClassifier
from sklearn.svm import LinearSVC

from skssl import DenoisingAEFeaturizer, FineTunedClassifier, RotNetFeaturizer
from skssl.metrics import labeled_scorer
from skssl.semi_supervised import LabeledOnly, labeled_mask

from _testing import ONE_EPOCH


class RowCountingRotNet(RotNetFeaturizer):
    """RotNet that records how many rows its pretext training saw."""

    def fit(self, X, y=None):
        super().fit(X, y)
        self.n_rows_seen_ = len(X)
        return self


@pytest.fixture(scope="module")
def digits(digits):
    X, y = digits
    return X[:240], y[:240]


def _hide_labels(y, n_labeled, seed=0):
    """A copy of ``y`` with all but ``n_labeled`` random rows set to -1."""
    y = y.copy()
    hidden = np.random.default_rng(seed).permutation(len(y))[n_labeled:]
    y[hidden] = -1
    return y


def _splits(X, y):
    """The splits that cv=3 makes for a classifier (stratified, -1 as a class)."""
    return list(check_cv(3, y, classifier=True).split(X, y))


def test_labeled_mask():
    np.testing.assert_array_equal(labeled_mask([1, -1, 0]), [True, False, True])
    np.testing.assert_array_equal(labeled_mask(np.array(["a", "b"])), [True, True])
    np.testing.assert_array_equal(labeled_mask(np.array(["a", -1], dtype=object)), [True, False])


NAMED = ["cat", -1, "dog", -1, "cat", "dog"]  # -1: unlabeled, whatever holds it
CONTAINERS = {
    "list": lambda y: list(y),
    "tuple": lambda y: tuple(y),
    "object array": lambda y: np.array(y, dtype=object),
    "Series": lambda y: pd.Series(y),
    "categorical Series": lambda y: pd.Series(y, dtype="category"),
    "column list": lambda y: [[value] for value in y],
    "column DataFrame": lambda y: pd.DataFrame({"label": y}),
    "NumPy scalars": lambda y: [np.int64(v) if v == -1 else np.str_(v) for v in y],
}


@pytest.mark.parametrize("container", CONTAINERS.values(), ids=CONTAINERS.keys())
def test_minus_one_is_unlabeled_in_every_container(container):
    X = np.arange(12, dtype=float).reshape(6, 2)
    y = container(NAMED)
    model = LabeledOnly(LogisticRegression())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataConversionWarning)  # column vectors
        model.fit(X, y)
    assert model.classes_.tolist() == ["cat", "dog"] and model.n_labeled_ == 4
    np.testing.assert_array_equal(np.ravel(labeled_mask(y)), [True, False, True, False, True, True])
    assert model.score(X, y) == labeled_scorer()(model, X, y)


STRING_MINUS_ONE = {
    "str array": np.array(["cat", "-1", "dog", "-1", "cat", "dog"]),
    "bytes array": np.array([b"cat", b"-1", b"dog", b"-1", b"cat", b"dog"]),
    "list of str": ["cat", "-1", "dog", "-1", "cat", "dog"],
    "Series from a CSV": pd.Series(["cat", "-1", "dog", "-1", "cat", "dog"]),
    "string Series": pd.Series(["cat", "-1", "dog", "-1", "cat", "dog"], dtype="string"),
}


@pytest.mark.parametrize("y", STRING_MINUS_ONE.values(), ids=STRING_MINUS_ONE.keys())
def test_the_string_minus_one_is_refused_wherever_minus_one_is_read(y):
    X = np.arange(12, dtype=float).reshape(6, 2)
    message = r'string "-1" in 2 row\(s\) \(the first is row 1\).*integer -1.*dtype=object'
    with pytest.raises(ValueError, match=message):
        labeled_mask(y)
    with pytest.raises(ValueError, match=message):
        LabeledOnly(LogisticRegression()).fit(X, y)
    model = LabeledOnly(LogisticRegression()).fit(X, NAMED)
    with pytest.raises(ValueError, match=message):
        model.score(X, y)
    with pytest.raises(ValueError, match=message):
        labeled_scorer()(model, X, y)


def test_a_network_classifier_refuses_the_string_minus_one():
    X = np.random.default_rng(0).random((6, 64))
    y = STRING_MINUS_ONE["str array"]
    with pytest.raises(ValueError, match='string "-1"'):
        FineTunedClassifier(DenoisingAEFeaturizer(**ONE_EPOCH), **ONE_EPOCH).fit(X, y)


def test_fits_the_classifier_on_the_labeled_rows_only(digits):
    X, y = digits
    y_partial = _hide_labels(y, 60)
    model = LabeledOnly(LogisticRegression(max_iter=1000)).fit(X, y_partial)
    labeled = y_partial != -1
    reference = LogisticRegression(max_iter=1000).fit(X[labeled], y[labeled])
    np.testing.assert_allclose(model.estimator_.coef_, reference.coef_)
    assert model.n_labeled_ == 60 and model.n_features_in_ == 64
    assert -1 not in model.classes_
    np.testing.assert_array_equal(model.classes_, np.unique(y[labeled]))
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X))
    np.testing.assert_allclose(model.decision_function(X), reference.decision_function(X))
    assert not hasattr(LabeledOnly(LogisticRegression()), "estimator_")  # cloned, not fitted


def test_score_ignores_unlabeled_rows(digits):
    X, y = digits
    y_partial = _hide_labels(y, 60)
    model = LabeledOnly(LogisticRegression(max_iter=1000)).fit(X, y_partial)
    y_test = _hide_labels(y, 100, seed=1)
    labeled = y_test != -1
    assert model.score(X, y_test) == accuracy_score(y[labeled], model.predict(X[labeled]))
    with pytest.raises(ValueError, match="all unlabeled"):
        model.score(X, np.full(len(y), -1))


def test_sample_weight_is_restricted_to_labeled_rows(digits):
    X, y = digits
    y_partial = _hide_labels(y, 60)
    weights = np.random.default_rng(0).random(len(y))
    model = LabeledOnly(LogisticRegression(max_iter=1000)).fit(X, y_partial, sample_weight=weights)
    labeled = y_partial != -1
    reference = LogisticRegression(max_iter=1000).fit(X[labeled], y[labeled], sample_weight=weights[labeled])
    np.testing.assert_allclose(model.estimator_.coef_, reference.coef_)


def test_object_labels_with_minus_one():
    X = np.arange(12, dtype=float).reshape(6, 2)
    y = np.array(["a", "a", -1, "b", "b", -1], dtype=object)
    model = LabeledOnly(LogisticRegression()).fit(X, y)
    assert model.classes_.tolist() == ["a", "b"] and model.n_labeled_ == 4


def test_no_labeled_row_is_a_clear_error(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="no labeled rows: all 240 values of y are -1"):
        LabeledOnly(LogisticRegression()).fit(X, np.full(240, -1))


def test_delegates_only_the_methods_the_classifier_has():
    assert not hasattr(LabeledOnly(LinearSVC()), "predict_proba")
    assert hasattr(LabeledOnly(LinearSVC()), "decision_function")


def test_the_featurizer_pretext_trains_on_every_row_of_each_fold(digits):
    X, y = digits
    y_partial = _hide_labels(y, 60)
    pipe = make_pipeline(RowCountingRotNet(**ONE_EPOCH), LabeledOnly(LogisticRegression(max_iter=1000)))
    result = cross_validate(pipe, X, y_partial, cv=3, return_estimator=True, scoring=labeled_scorer())
    for fitted, (train, _) in zip(result["estimator"], _splits(X, y_partial)):
        assert fitted[0].n_rows_seen_ == len(train) == 160  # labeled and unlabeled
        assert fitted[-1].n_labeled_ == np.sum(y_partial[train] != -1) < 60
    assert np.all(result["test_score"] > 0.3)


def test_labeled_scorer_in_grid_search(digits):
    X, y = digits
    y_partial = _hide_labels(y, 120)
    grid = {"estimator__C": [0.01, 1.0]}
    search = GridSearchCV(
        LabeledOnly(LogisticRegression(max_iter=1000)), grid, cv=3, scoring=labeled_scorer("accuracy")
    ).fit(X, y_partial)
    # the same numbers as scoring the labeled test rows of every split by hand
    for index, params in enumerate(search.cv_results_["params"]):
        for split, (train, test) in enumerate(_splits(X, y_partial)):
            model = LabeledOnly(LogisticRegression(max_iter=1000, C=params["estimator__C"])).fit(
                X[train], y_partial[train]
            )
            labeled = test[y_partial[test] != -1]
            expected = accuracy_score(y_partial[labeled], model.predict(X[labeled]))
            assert search.cv_results_[f"split{split}_test_score"][index] == pytest.approx(expected)
    # a plain scorer counts every unlabeled row as a mistake
    plain = GridSearchCV(LabeledOnly(LogisticRegression(max_iter=1000)), grid, cv=3, scoring="accuracy")
    assert plain.fit(X, y_partial).best_score_ < 0.6 < search.best_score_


def test_labeled_scorer_takes_callables_and_pickles(digits):
    X, y = digits
    y_partial = _hide_labels(y, 100)
    model = LabeledOnly(LogisticRegression(max_iter=1000)).fit(X, y_partial)
    labeled = y_partial != -1
    scorer = pickle.loads(pickle.dumps(labeled_scorer(make_scorer(balanced_accuracy_score))))
    assert scorer(model, X, y_partial) == balanced_accuracy_score(y[labeled], model.predict(X[labeled]))
    weights = np.linspace(0, 1, len(y))
    assert labeled_scorer()(model, X, y_partial, sample_weight=weights) == accuracy_score(
        y[labeled], model.predict(X[labeled]), sample_weight=weights[labeled]
    )
    with pytest.raises(ValueError, match="every row of this split is unlabeled"):
        scorer(model, X, np.full(len(y), -1))
    with pytest.raises(ValueError, match="scoring must be"):
        labeled_scorer(3)
    assert repr(labeled_scorer()).startswith("labeled_scorer(")


def test_self_training_classifier_as_the_final_step(digits):
    X, y = digits
    y_partial = _hide_labels(y, 60)
    pipe = make_pipeline(RowCountingRotNet(**ONE_EPOCH), SelfTrainingClassifier(LogisticRegression(max_iter=1000)))
    search = GridSearchCV(
        pipe, {"selftrainingclassifier__threshold": [0.75, 0.95]}, cv=3, scoring=labeled_scorer()
    ).fit(X, y_partial)
    best = search.best_estimator_
    assert best[0].n_rows_seen_ == len(X)
    assert -1 not in best.classes_
    assert search.best_score_ > 0.3
    assert best.predict(X[:5]).shape == (5,)


def test_clone_keeps_the_inner_estimator_unfitted(digits):
    X, y = digits
    model = LabeledOnly(LogisticRegression(max_iter=1000)).fit(X, y)
    copy = clone(model)
    assert not hasattr(copy, "estimator_") and copy.estimator.get_params() == model.estimator.get_params()
