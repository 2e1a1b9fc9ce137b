import sys

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skssl import CPCFeaturizer, RotNetFeaturizer
from skssl.baselines import RandomFeaturizer
from skssl.evaluation import (
    _knn_predict,
    _labelled_order,
    _table,
    knn_probe,
    label_efficiency,
    layerwise_probe,
    linear_probe,
    pixel_probe,
    plot_label_efficiency,
    plot_layerwise,
    random_twin,
)


@pytest.fixture(scope="module")
def digits(digits):
    X, y = digits
    return X[:200], y[:200], X[200:400], y[200:400]


@pytest.fixture(scope="module")
def featurizer(digits):
    return RandomFeaturizer(device="cpu", random_state=0).fit(digits[0])


def _knn_reference(train, labels, test, k, temperature):
    """One test point at a time, sorted neighbours, a dict of votes."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    predictions = []
    for point in test / np.linalg.norm(test, axis=1, keepdims=True):
        similarity = train @ point
        votes = {}
        for index in np.argsort(-similarity)[:k]:
            votes[labels[index]] = votes.get(labels[index], 0.0) + np.exp(similarity[index] / temperature)
        predictions.append(max(sorted(votes), key=votes.get))
    return np.array(predictions)


def test_knn_vote_by_hand():
    # One neighbour of class "a" at similarity 1, two of class "b" at 0.6.
    train = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = np.array(["a", "b", "b"])
    query = np.array([[2.0, 0.0]])  # normalised to (1, 0)
    # T = 0.1: exp(10) = 22026 > 2 exp(6) = 807, so the single close neighbour wins.
    assert _knn_predict(train, labels, query, k=3, temperature=0.1).tolist() == ["a"]
    # T = 10: exp(0.1) = 1.105 < 2 exp(0.06) = 2.124, so the majority wins.
    assert _knn_predict(train, labels, query, k=3, temperature=10.0).tolist() == ["b"]
    # k = 1 reads only the nearest; k above n_train is capped.
    assert _knn_predict(train, labels, query, k=1, temperature=10.0).tolist() == ["a"]
    assert _knn_predict(train, labels, query, k=200, temperature=0.1).tolist() == ["a"]
    # Norms do not matter: cosine similarity.
    assert _knn_predict(train * [[5.0], [0.1], [3.0]], labels, query, k=3, temperature=10.0).tolist() == ["b"]


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (7, 0.1), (7, 1.0), (50, 0.05)])
def test_knn_predict_matches_reference(k, temperature):
    rng = np.random.default_rng(k)
    train, test = rng.normal(size=(60, 5)), rng.normal(size=(25, 5))
    labels = rng.integers(0, 4, 60)
    expected = _knn_reference(train, labels, test, k, temperature)
    np.testing.assert_array_equal(_knn_predict(train, labels, test, k, temperature), expected)
    np.testing.assert_array_equal(_knn_predict(train, labels, test, k, temperature, chunk_size=4), expected)


def test_knn_survives_tiny_temperatures():
    train = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert _knn_predict(train, [0, 1], np.array([[0.1, 1.0]]), k=2, temperature=1e-4).tolist() == [1]


def test_probes_on_separable_features():
    # Features that are the labels' one-hot codes plus small noise: any sane probe
    # gets every test point right.
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(40) % 4, np.arange(20) % 4
    X_train = np.eye(4)[y_train] + rng.normal(0, 0.05, (40, 4))
    X_test = np.eye(4)[y_test] + rng.normal(0, 0.05, (20, 4))
    identity = FunctionTransformer().fit(X_train)
    assert linear_probe(identity, X_train, y_train, X_test, y_test) == 1.0
    assert knn_probe(identity, X_train, y_train, X_test, y_test, k=5) == 1.0
    # Features that are pure noise are at chance, or close.
    noise = FunctionTransformer(lambda X: rng.normal(size=X.shape)).fit(X_train)
    assert linear_probe(noise, X_train, y_train, X_test, y_test) < 0.6


def test_linear_probe_is_scaler_plus_logistic_regression_and_refits_nothing(digits, featurizer):
    X_train, y_train, X_test, y_test = digits
    weights = {k: v.clone() for k, v in featurizer.task_.state_dict().items()}
    state = dict(vars(featurizer))
    accuracy = linear_probe(featurizer, X_train, y_train, X_test, y_test, C=0.5)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))
    reference.fit(featurizer.transform(X_train), y_train)
    assert accuracy == reference.score(featurizer.transform(X_test), y_test)
    assert isinstance(accuracy, float) and accuracy > 0.5
    assert vars(featurizer).keys() == state.keys()
    assert all(vars(featurizer)[key] is value for key, value in state.items())
    for name, value in featurizer.task_.state_dict().items():
        assert torch.equal(value, weights[name])


def test_probes_need_a_fitted_featurizer(digits):
    X_train, y_train, X_test, y_test = digits
    for probe in (linear_probe, knn_probe, layerwise_probe, label_efficiency):
        with pytest.raises(NotFittedError):
            probe(RandomFeaturizer(), X_train, y_train, X_test, y_test)


def test_knn_probe_rejects_bad_settings(digits, featurizer):
    with pytest.raises(ValueError, match="k must be"):
        knn_probe(featurizer, *digits, k=0)
    with pytest.raises(ValueError, match="temperature"):
        knn_probe(featurizer, *digits, temperature=0)


def test_pixel_probe_flattens_any_layout(digits):
    X_train, y_train, X_test, y_test = digits
    flat = pixel_probe(X_train, y_train, X_test, y_test)
    assert flat == pixel_probe(X_train.reshape(-1, 8, 8), y_train, X_test.reshape(-1, 8, 8), y_test)
    assert flat > 0.8


@pytest.mark.parametrize("probe", ["linear", "knn"])
def test_layerwise_probe_has_a_row_per_stage(digits, featurizer, probe):
    X_train, y_train, X_test, y_test = digits
    state = dict(vars(featurizer))
    table = layerwise_probe(featurizer, X_train, y_train, X_test, y_test, probe=probe)
    assert list(table.columns) == ["layer", "n_features", "accuracy"]
    assert table["layer"].tolist() == ["conv1", "conv2", "conv3"]
    assert table["n_features"].tolist() == [32 * 2 * 2, 64 * 2 * 2, 128 * 2 * 2]
    assert table["accuracy"].between(0, 1).all()
    # The row of the featurizer's own layer is the plain probe.
    own = table.set_index("layer").loc[featurizer.layer_, "accuracy"]
    plain = linear_probe if probe == "linear" else knn_probe
    assert own == plain(featurizer, X_train, y_train, X_test, y_test)
    assert vars(featurizer).keys() == state.keys()
    assert all(vars(featurizer)[key] is value for key, value in state.items())
    with pytest.raises(ValueError, match="probe must be"):
        layerwise_probe(featurizer, X_train, y_train, X_test, y_test, probe="svm")


def test_random_twin_reads_the_same_network_the_same_way(digits):
    X = digits[0]
    rotnet = RotNetFeaturizer(max_epochs=1, device="cpu", random_state=0).fit(X)
    twin = random_twin(rotnet, X, random_state=0)
    assert isinstance(twin, RandomFeaturizer) and (twin.layer_, twin.pool_) == (rotnet.layer_, rotnet.pool_)
    assert twin.transform(X[:5]).shape == rotnet.transform(X[:5]).shape
    # CPC reads a grid of patches: its twin is CPC itself, untrained, read the same way
    cpc = CPCFeaturizer(max_epochs=1, batch_size=32, device="cpu", random_state=0).fit(X)
    twin = random_twin(cpc, X, random_state=0)
    assert isinstance(twin, CPCFeaturizer) and twin.max_epochs == 0 and cpc.max_epochs == 1
    assert twin.transform(X[:5]).shape == cpc.transform(X[:5]).shape == (5, 9 * 128)
    assert not np.allclose(twin.transform(X[:5]), cpc.transform(X[:5]))


def test_labelled_order_puts_one_row_per_class_first():
    y = np.repeat(np.arange(5), [1, 2, 3, 4, 40])
    order = _labelled_order(y, np.random.RandomState(0))
    assert sorted(order) == list(range(len(y)))
    assert set(y[order[:5]]) == set(range(5))
    assert not np.array_equal(order, _labelled_order(y, np.random.RandomState(1)))


def test_label_efficiency_table(digits):
    X_train, y_train, X_test, y_test = digits
    featurizer = RotNetFeaturizer(max_epochs=1, device="cpu", random_state=0).fit(X_train)
    table = label_efficiency(
        featurizer,
        X_train,
        y_train,
        X_test,
        y_test,
        n_labels=(10, 30, None, 5000),
        baselines=("random", "pixels"),
    )
    assert list(table.columns) == ["n_labels", "method", "accuracy"]
    assert len(table) == 3 * 3  # 5000 > 200 is skipped
    assert table["n_labels"].tolist() == [10] * 3 + [30] * 3 + [200] * 3
    assert table["method"].tolist()[:3] == ["RotNetFeaturizer", "random", "pixels"]
    assert table["accuracy"].between(0, 1).all()
    by_method = table[table.n_labels == 200].set_index("method")["accuracy"]
    assert by_method["RotNetFeaturizer"] == linear_probe(featurizer, X_train, y_train, X_test, y_test)
    assert by_method["pixels"] == pixel_probe(X_train, y_train, X_test, y_test)
    same_init = RandomFeaturizer(layer=featurizer.layer_, device="cpu", random_state=0).fit(X_train)
    assert by_method["random"] == linear_probe(same_init, X_train, y_train, X_test, y_test)
    with pytest.raises(ValueError, match="Unknown baselines"):
        label_efficiency(featurizer, X_train, y_train, X_test, y_test, baselines=("imagenet",))
    with pytest.raises(ValueError, match="at least 2"):
        label_efficiency(featurizer, X_train, y_train, X_test, y_test, n_labels=(1,))


def test_label_efficiency_trains_the_supervised_baseline(digits, featurizer):
    X_train, y_train, X_test, y_test = digits
    table = label_efficiency(
        featurizer,
        X_train,
        y_train,
        X_test,
        y_test,
        n_labels=(20,),
        baselines=("supervised",),
        supervised_params={"max_epochs": 1},
    )
    assert table["method"].tolist() == ["RandomFeaturizer", "supervised"]
    assert table["accuracy"].between(0, 1).all()


def test_tables_are_lists_of_dicts_without_pandas(monkeypatch):
    rows = [{"layer": "conv1", "n_features": 4, "accuracy": 0.5}]
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    assert _table(rows) is rows


@pytest.mark.parametrize("as_frame", [True, False])
def test_plots_draw_one_line_per_method_and_one_bar_per_layer(as_frame):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    efficiency = [
        {"n_labels": n, "method": method, "accuracy": accuracy}
        for n in (10, 100)
        for method, accuracy in (("RotNetFeaturizer", 0.6), ("pixels", 0.5))
    ]
    layers = [{"layer": f"conv{i}", "n_features": 8 * i, "accuracy": 0.1 * i} for i in (1, 2, 3)]
    if as_frame:
        import pandas as pd

        efficiency, layers = pd.DataFrame(efficiency), pd.DataFrame(layers)
    ax = plot_label_efficiency(efficiency)
    assert [line.get_label() for line in ax.get_lines()] == ["RotNetFeaturizer", "pixels"]
    assert ax.get_xscale() == "log"
    _, own_ax = plt.subplots()
    assert plot_layerwise(layers, ax=own_ax) is own_ax
    assert [bar.get_height() for bar in own_ax.patches] == pytest.approx([0.1, 0.2, 0.3])
    plt.close("all")


def test_plots_say_how_to_get_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    for plot in (plot_label_efficiency, plot_layerwise):
        with pytest.raises(ImportError, match=r'pip install "skssl\[plot\]"'):
            plot([])


def test_fine_tune_probe_fine_tunes_a_copy_and_learns(digits):
    from skssl import FineTunedClassifier
    from skssl.evaluation import fine_tune_probe

    X_train, y_train, X_test, y_test = digits
    pretrained = RotNetFeaturizer(max_epochs=1, device="cpu", random_state=0).fit(X_train)
    before = pretrained.transform(X_test)
    params = dict(max_epochs=30, batch_size=32, semi_supervised_epochs=2, device="cpu", random_state=0)
    accuracy = fine_tune_probe(
        pretrained, X_train[:100], y_train[:100], X_test, y_test, X_unlabeled=X_train[100:], **params
    )
    assert accuracy > 0.6  # chance is 0.1
    np.testing.assert_array_equal(pretrained.transform(X_test), before)  # never refitted
    y_partial = np.concatenate([y_train[:100], np.full(100, -1)])
    from sklearn.frozen import FrozenEstimator

    by_hand = FineTunedClassifier(FrozenEstimator(pretrained), **params).fit(X_train, y_partial)
    assert accuracy == by_hand.score(X_test, y_test)


def test_label_efficiency_semi_supervised_rows_see_the_rest_as_unlabeled(digits, monkeypatch):
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    from skssl import FineTunedClassifier
    from skssl.evaluation import SEMI_SUPERVISED_BASELINES

    X_train, y_train, X_test, y_test = digits
    pretrained = RotNetFeaturizer(max_epochs=1, device="cpu", random_state=0).fit(X_train)
    seen = []

    def recording(fit):
        def fit_and_record(self, X, y):
            y = np.asarray(y)
            seen.append((type(self).__name__, len(X), int((y != -1).sum())))
            return fit(self, X, y)

        return fit_and_record

    for cls in (FineTunedClassifier, SelfTrainingClassifier, LabelSpreading):
        monkeypatch.setattr(cls, "fit", recording(cls.fit))
    table = label_efficiency(
        pretrained,
        X_train,
        y_train,
        X_test,
        y_test,
        n_labels=(30,),
        baselines=SEMI_SUPERVISED_BASELINES,
        classifier_params={"max_epochs": 2, "semi_supervised_epochs": 1},
    )
    assert list(table["method"]) == ["RotNetFeaturizer", *SEMI_SUPERVISED_BASELINES]
    assert ((table["accuracy"] > 0) & (table["accuracy"] <= 1)).all()
    # three FineTunedClassifier fits, one SelfTraining, one LabelSpreading: all 200 images, 30 labeled
    assert sorted(name for name, _, _ in seen) == ["FineTunedClassifier"] * 3 + [
        "LabelSpreading",
        "SelfTrainingClassifier",
    ]
    assert {(n_images, n_labeled) for _, n_images, n_labeled in seen} == {(200, 30)}
