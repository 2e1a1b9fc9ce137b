"""FineTunedClassifier: pretext, fine-tuning and the semi-supervised stages; what it
keeps, refuses, saves and resumes."""

import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from skssl import (
    DenoisingAEFeaturizer,
    FineTunedClassifier,
    RotNetFeaturizer,
    SimCLRFeaturizer,
    labeled_scorer,
    load,
)
from skssl._transfer_tasks import ClassifierNetwork
from skssl.base import BaseFeaturizer
from skssl.evaluation import linear_probe

from _testing import TINY, assert_same_weights

FEATURIZER = TINY
FAST = dict(max_epochs=3, batch_size=32, semi_supervised_epochs=2, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits(digits):
    """300 digits, the first 100 labeled, the rest unlabeled (-1); 300 others to test."""
    X, y = digits
    y_partial = y[:300].copy()
    y_partial[100:] = -1
    return X[:300], y_partial, X[300:600], y[300:600]


@pytest.fixture(scope="module")
def fitted_featurizer(digits):
    return DenoisingAEFeaturizer(**FEATURIZER).fit(digits[0])


def _weights(module):
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


# --- what it learns ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fine_tuning_beats_the_frozen_probe_on_digits(seed):
    """Pretext on 600 digits, 180 of them labeled; 600 others to test. The denoising
    featurizer's frozen conv3 probes at 0.86-0.90; its network fine-tuned on the same
    labels reached 0.95-0.96 (seeds 0-2) when the margin was set, on the lab network
    (with the default "wide_cnn": 0.90-0.91 frozen, 0.92-0.94 fine-tuned)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=600, test_size=600, stratify=y, random_state=seed
    )
    labeled = np.arange(180)
    featurizer = DenoisingAEFeaturizer(backbone="small_cnn", device="cpu", random_state=seed).fit(X_train)
    frozen = linear_probe(featurizer, X_train[labeled], y_train[labeled], X_test, y_test)
    y_partial = np.full(len(y_train), -1)
    y_partial[labeled] = y_train[labeled]
    classifier = FineTunedClassifier(
        FrozenEstimator(featurizer), semi_supervised=None, device="cpu", random_state=seed
    ).fit(X_train, y_partial)
    fine_tuned = classifier.score(X_test, y_test)
    assert fine_tuned > frozen + 0.03, (fine_tuned, frozen)
    losses = [h["loss"] for h in classifier.history_]
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("semi_supervised", ["self_training", "distill", "s4l"])
def test_every_semi_supervised_stage_trains_and_predicts(digits, semi_supervised):
    X, y, X_test, y_test = digits
    featurizer = DenoisingAEFeaturizer(**{**FEATURIZER, "max_epochs": 10})
    settings = {**FAST, "max_epochs": 20, "semi_supervised_epochs": 3}
    classifier = FineTunedClassifier(featurizer, semi_supervised=semi_supervised, **settings).fit(X, y)
    stages = [h["stage"] for h in classifier.history_]
    if semi_supervised == "s4l":  # one joint stage, as long as the featurizer's pretext
        assert stages == ["s4l"] * 10
    else:
        assert stages == ["fine_tune"] * 20 + ["semi_supervised"] * 3
    assert classifier.n_iter_ == len(stages) and classifier.n_labeled_ == 100
    proba = classifier.predict_proba(X_test)
    assert proba.shape == (300, 10) and np.allclose(proba.sum(axis=1), 1)
    assert classifier.score(X_test, y_test) > 0.5  # 10 classes: chance is 0.1


def test_s4l_needs_a_task_without_its_own_targets(digits):
    from skssl import DeepClusterFeaturizer

    X, y, _, _ = digits
    with pytest.raises(ValueError, match="s4l.*DeepCluster"):
        FineTunedClassifier(DeepClusterFeaturizer(**FEATURIZER), semi_supervised="s4l", **FAST).fit(X, y)


def test_without_unlabeled_rows_only_fine_tuning_runs(digits):
    X, y, _, _ = digits
    classifier = FineTunedClassifier(DenoisingAEFeaturizer(**FEATURIZER), **FAST).fit(X[:100], y[:100])
    assert {h["stage"] for h in classifier.history_} == {"fine_tune"}
    assert classifier.n_labeled_ == 100


@pytest.mark.parametrize("n_labeled", [2, 128], ids=["batches without labels", "batches without unlabeled"])
def test_self_training_takes_batches_of_one_kind(digits, n_labeled):
    """130 images in batches of 32: with 128 labeled most batches hold no unlabeled
    image; with 2 labeled (one per class) most hold no labeled one."""
    X, y_digits, _, _ = digits
    y = np.full(130, -1)
    y[:n_labeled] = y_digits[:n_labeled] % 2 if n_labeled > 2 else [0, 1]
    classifier = FineTunedClassifier(DenoisingAEFeaturizer(**FEATURIZER), **FAST).fit(X[:130], y)
    assert [h["stage"] for h in classifier.history_].count("semi_supervised") == 2
    assert np.isfinite([h["loss"] for h in classifier.history_]).all()


# --- labels ----------------------------------------------------------------------------------


def test_unlabeled_rows_never_reach_the_loss_as_a_class(digits, monkeypatch):
    """Unlabeled rows are blank images; were -1 a class, the network would learn that
    blank means -1 (it is the only class with blank images)."""
    X, _, _, _ = digits
    y_true = load_digits().target[:300]
    X = X.copy()
    X[150:] = 0.0  # the unlabeled rows: blank
    y = np.where(np.arange(300) < 150, y_true, -1)
    seen = []
    original = ClassifierNetwork.loss

    def spy(self, inputs, targets):
        if not targets.is_floating_point():
            seen.append(targets.detach().clone())
        return original(self, inputs, targets)

    monkeypatch.setattr(ClassifierNetwork, "loss", spy)
    classifier = FineTunedClassifier(DenoisingAEFeaturizer(**FEATURIZER), semi_supervised=None, **FAST)
    classifier.fit(X, y)
    assert classifier.classes_.tolist() == list(range(10))
    assert classifier.task_.head.out_features == 10
    assert torch.cat(seen).min() >= 0  # fine-tuning saw labeled rows only
    assert -1 not in classifier.predict(X[150:])


@pytest.mark.parametrize("container", [list, lambda y: np.asarray(y, dtype=object)])
def test_string_labels_beside_minus_one(digits, container):
    X, y, X_test, _ = digits
    names = np.array(list("abcdefghij"), dtype=object)
    y_named = container([names[v] if v >= 0 else -1 for v in y])
    classifier = FineTunedClassifier(DenoisingAEFeaturizer(**FEATURIZER), **FAST).fit(X, y_named)
    assert classifier.classes_.tolist() == list("abcdefghij")
    assert set(classifier.predict(X_test)) <= set("abcdefghij")
    assert classifier.n_labeled_ == 100


@pytest.mark.parametrize(
    "y, error, match",
    [
        (np.full(300, -1), ValueError, "no labeled image"),
        (np.where(np.arange(300) < 100, 3, -1), ValueError, "at least 2 classes"),
        (np.zeros(299), ValueError, "300 images but y has 299"),
        (np.where(np.arange(300) < 100, np.nan, -1.0), ValueError, "NaN"),
        (None, ValueError, "requires y"),
        (np.linspace(0, 1, 300), ValueError, "Unknown label type"),
    ],
    ids=["no-label", "one-class", "length", "nan", "none", "continuous"],
)
def test_bad_labels_are_clear_errors(digits, y, error, match):
    X, _, _, _ = digits
    with pytest.raises(error, match=match):
        FineTunedClassifier(DenoisingAEFeaturizer(**FEATURIZER), **FAST).fit(X, y)


@pytest.mark.parametrize("featurizer", [StandardScaler(), LogisticRegression()])
def test_a_featurizer_that_is_not_skssl_is_a_type_error(digits, featurizer):
    X, y, _, _ = digits
    with pytest.raises(TypeError, match="skssl featurizer"):
        FineTunedClassifier(featurizer, **FAST).fit(X, y)


# --- the pretext stage: frozen, cached, not repeated ----------------------------------------


def test_a_frozen_featurizer_is_never_refitted_nor_changed(digits, fitted_featurizer, monkeypatch):
    X, y, X_test, _ = digits
    before = _weights(fitted_featurizer.task_)
    features = fitted_featurizer.transform(X_test)
    attributes = {name: copy.deepcopy(value) for name, value in vars(fitted_featurizer).items() if name != "task_"}
    fits = []
    monkeypatch.setattr(BaseFeaturizer, "fit", lambda self, *args, **kwargs: fits.append(self))
    classifier = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    assert fits == []
    assert classifier.featurizer_ is fitted_featurizer
    assert_same_weights(_weights(fitted_featurizer.task_), before)
    np.testing.assert_array_equal(fitted_featurizer.transform(X_test), features)
    assert not any(p.requires_grad for p in fitted_featurizer.task_.parameters())
    after = {name: value for name, value in vars(fitted_featurizer).items() if name != "task_"}
    assert after.keys() == attributes.keys()
    for name, value in attributes.items():
        assert repr(after[name]) == repr(value), name  # history_, value_range_, ... as they were
    # and the classifier's network did train: it differs from the featurizer's
    assert not np.allclose(classifier.transform(X_test), features)


def test_grid_search_over_fine_tuning_reuses_the_pretext_fit(digits, tmp_path, monkeypatch):
    X, y, _, _ = digits
    fits = []
    original = BaseFeaturizer.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BaseFeaturizer, "fit", counting_fit)
    classifier = FineTunedClassifier(DenoisingAEFeaturizer(**FEATURIZER), memory=str(tmp_path), **FAST)
    search = GridSearchCV(
        classifier,
        {"learning_rate": [1e-3, 3e-3], "max_epochs": [1, 2]},
        cv=2,
        scoring=labeled_scorer("accuracy"),
    ).fit(X, y)
    # 4 candidates x 2 folds + the refit: one pretext fit per training set (2 folds + all rows)
    assert len(fits) == 3
    assert 0.1 < search.best_score_ <= 1.0
    without_memory = []
    monkeypatch.setattr(
        BaseFeaturizer, "fit", lambda self, *a, **k: without_memory.append(1) or original(self, *a, **k)
    )
    GridSearchCV(clone(classifier).set_params(memory=None), {"max_epochs": [1, 2]}, cv=2, scoring=labeled_scorer()).fit(
        X, y
    )
    assert len(without_memory) == 2 * 2 + 1


def test_labeled_scorer_ignores_unlabeled_rows(digits, fitted_featurizer):
    X, y, _, _ = digits
    classifier = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    labeled = y >= 0
    expected = classifier.score(X[labeled], y[labeled])
    assert labeled_scorer("accuracy")(classifier, X, y) == expected


# --- the transfer's own settings ---------------------------------------------------------------


def test_frozen_stages_keep_their_weights_and_statistics(digits, fitted_featurizer):
    X, y, _, _ = digits
    classifier = FineTunedClassifier(
        FrozenEstimator(fitted_featurizer), frozen_stages="conv2", semi_supervised=None, **FAST
    ).fit(X, y)
    before = fitted_featurizer.task_.backbone.state_dict()
    after = classifier.task_.backbone.state_dict()
    for name in before:
        if name.startswith(("stages.conv1", "stages.conv2")):
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(after[name], before[name]) for name in before if name.startswith("stages.conv3"))
    with pytest.raises(ValueError, match="not a stage"):
        clone(classifier).set_params(frozen_stages="conv9").fit(X, y)


def test_frozen_stages_cannot_pass_the_featurizers_layer(digits):
    X, y, _, _ = digits
    featurizer = FrozenEstimator(RotNetFeaturizer(**FEATURIZER).fit(X))  # layer_ = "conv2"
    with pytest.raises(ValueError, match="reaches past"):
        FineTunedClassifier(featurizer, frozen_stages=3, **FAST).fit(X, y)


def test_backbone_learning_rate_zero_trains_the_head_alone(digits, fitted_featurizer):
    X, y, _, _ = digits
    classifier = FineTunedClassifier(
        FrozenEstimator(fitted_featurizer), backbone_lr_scale=0.0, augment=False, semi_supervised=None, **FAST
    ).fit(X, y)
    before = fitted_featurizer.task_.backbone.state_dict()
    after = classifier.task_.backbone.state_dict()
    for name in before:  # weights unchanged; batch-norm statistics may move
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0, msg=name)


def test_early_stopping_watches_held_out_labels_and_keeps_the_best_epoch(digits, fitted_featurizer):
    X, y, _, _ = digits
    classifier = FineTunedClassifier(
        FrozenEstimator(fitted_featurizer),
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=2,
        tol=1.0,
        semi_supervised=None,
        **{**FAST, "max_epochs": 20},
    ).fit(X, y)
    scores = [h["validation_score"] for h in classifier.history_]
    assert classifier.n_iter_ == 3  # tol=1 accuracy can never be improved by
    assert all(0 <= s <= 1 for s in scores)
    assert classifier.n_labeled_ == 100


def test_transform_gives_the_fine_tuned_features(digits, fitted_featurizer):
    X, y, X_test, _ = digits
    classifier = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    features = classifier.transform(X_test)
    assert features.dtype == np.float32 and features.shape == fitted_featurizer.transform(X_test).shape
    scores = classifier.decision_function(X_test)
    np.testing.assert_allclose(
        np.log(classifier.predict_proba(X_test)), classifier.predict_log_proba(X_test), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_array_equal(classifier.classes_[scores.argmax(axis=1)], classifier.predict(X_test))


def test_decision_function_of_two_classes_is_one_score(digits, fitted_featurizer):
    X, y, X_test, _ = digits
    binary = np.where(y >= 0, y % 2, -1)
    classifier = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, binary)
    scores = classifier.decision_function(X_test)
    assert scores.shape == (300,)
    np.testing.assert_array_equal(classifier.classes_[(scores > 0).astype(int)], classifier.predict(X_test))


# --- persistence, reproducibility, faults ---------------------------------------------------------


def test_seeded_fits_are_identical_and_leave_the_global_rng(digits, fitted_featurizer):
    X, y, X_test, _ = digits
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    second = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(first.predict_proba(X_test), second.predict_proba(X_test))


def test_pickle_joblib_and_the_safe_format_give_the_same_predictions(digits, tmp_path):
    X, y, X_test, _ = digits
    names = np.array(list("abcdefghij"), dtype=object)
    y_named = np.array([names[v] if v >= 0 else -1 for v in y], dtype=object)
    classifier = FineTunedClassifier(SimCLRFeaturizer(**FEATURIZER, crop_scale=(0.5, 1.0)), **FAST).fit(X, y_named)
    expected = classifier.predict_proba(X_test)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(classifier)).predict_proba(X_test), expected)
    joblib.dump(classifier, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X_test), expected)
    classifier.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    assert type(restored) is FineTunedClassifier
    np.testing.assert_array_equal(restored.predict_proba(X_test), expected)
    np.testing.assert_array_equal(restored.predict(X_test), classifier.predict(X_test))
    assert restored.classes_.tolist() == list("abcdefghij")
    assert restored.get_params(deep=False).keys() == classifier.get_params(deep=False).keys()
    assert restored.featurizer.get_params() == classifier.featurizer.get_params()  # tuples stay tuples
    assert restored.history_ == classifier.history_
    np.testing.assert_array_equal(restored.featurizer_.transform(X_test), classifier.featurizer_.transform(X_test))


def test_safe_format_keeps_a_frozen_featurizer(digits, fitted_featurizer, tmp_path):
    X, y, X_test, _ = digits
    classifier = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    classifier.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    assert isinstance(restored.featurizer, FrozenEstimator)
    np.testing.assert_array_equal(restored.featurizer.transform(X_test), fitted_featurizer.transform(X_test))
    np.testing.assert_array_equal(restored.predict_proba(X_test), classifier.predict_proba(X_test))


def test_clone_is_unfitted_and_refits_the_same(digits, fitted_featurizer):
    X, y, X_test, _ = digits
    classifier = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    cloned = clone(classifier)
    with pytest.raises(NotFittedError):
        cloned.predict(X_test)
    np.testing.assert_array_equal(cloned.fit(X, y).predict_proba(X_test), classifier.predict_proba(X_test))


def _interrupt_at(at):
    """``ClassifierNetwork.loss`` raising KeyboardInterrupt at its ``at``-th call."""
    original, calls = ClassifierNetwork.loss, []

    def loss(network, inputs, targets):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return original(network, inputs, targets)

    return loss


def test_ctrl_c_in_fine_tuning_keeps_the_last_epoch_and_resumes_exactly(
    digits, fitted_featurizer, tmp_path, monkeypatch
):
    X, y, X_test, _ = digits
    settings = dict(featurizer=DenoisingAEFeaturizer(**FEATURIZER), semi_supervised=None, **{**FAST, "max_epochs": 4})
    uninterrupted = FineTunedClassifier(**settings).fit(X, y)
    monkeypatch.setattr(ClassifierNetwork, "loss", _interrupt_at(8))  # 3 steps an epoch: in epoch 3
    interrupted = FineTunedClassifier(**settings, checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"interrupted.*\(2 of 4\)"):
        interrupted.fit(X, y)
    assert interrupted.n_iter_ == 2 and np.isfinite(interrupted.predict_proba(X_test)).all()
    monkeypatch.undo()
    resumed = FineTunedClassifier(**settings, checkpoint_dir=tmp_path, warm_start=True).fit(X, y)
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in uninterrupted.history_]
    assert_same_weights(_weights(resumed.task_), _weights(uninterrupted.task_))
    assert (tmp_path / "pretext" / "checkpoint.pt").exists() and (tmp_path / "fine_tune.pt").exists()


def test_ctrl_c_in_pretext_training_stops_before_fine_tuning(digits, monkeypatch):
    from skssl.methods.denoising import DenoisingTask

    X, y, _, _ = digits
    original = DenoisingTask.loss

    def interrupting(self, inputs, targets):
        raise KeyboardInterrupt

    monkeypatch.setattr(DenoisingTask, "loss", interrupting)
    classifier = FineTunedClassifier(DenoisingAEFeaturizer(**FEATURIZER), **FAST)
    with pytest.warns(UserWarning, match="interrupted"), pytest.raises(KeyboardInterrupt):
        classifier.fit(X, y)
    with pytest.raises(NotFittedError):
        classifier.predict(X)
    assert original is not interrupting


def test_a_checkpoint_of_other_classes_is_refused(digits, fitted_featurizer, tmp_path):
    X, y, _, _ = digits
    settings = dict(
        featurizer=FrozenEstimator(fitted_featurizer), semi_supervised=None, checkpoint_dir=tmp_path, **FAST
    )
    FineTunedClassifier(**settings).fit(X, y)
    with pytest.raises(ValueError, match="written for classes"):
        FineTunedClassifier(**settings, warm_start=True).fit(X, np.where(y >= 0, y % 3, -1))


def test_divergence_leaves_the_classifier_unfitted(digits, fitted_featurizer):
    X, y, X_test, _ = digits
    classifier = FineTunedClassifier(FrozenEstimator(fitted_featurizer), **FAST).fit(X, y)
    classifier.set_params(learning_rate=1e30, augment=False)
    with pytest.raises(ValueError, match="diverged and the classifier is not fitted"):
        classifier.fit(X, y)
    with pytest.raises(NotFittedError):
        classifier.predict(X_test)
