"""Saving and loading without pickle (``skssl._persistence``): a saved file restores the
model and its fitted state; tampered files, other format versions and module instances
as backbones are refused."""

import os
import shutil

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skssl import (
    ContextEncoderFeaturizer,
    DenoisingAEFeaturizer,
    DINOFeaturizer,
    ExemplarFeaturizer,
    RotNetFeaturizer,
    SwAVFeaturizer,
    load,
)

from _testing import FAST, InterruptingNet, fit_settings

X = load_digits().data[:96]
TINY = fit_settings(4, 32)


class Payload:
    """What an attacker would put in a model file: code that runs on unpickling."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("cls", [RotNetFeaturizer, DenoisingAEFeaturizer])
def test_save_and_load_without_pickle(cls, tmp_path):
    from skssl import load

    featurizer = cls(**{**TINY, "max_epochs": 1}).fit(X)
    featurizer.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    assert type(restored) is cls and restored.get_params() == featurizer.get_params()
    np.testing.assert_array_equal(restored.transform(X), featurizer.transform(X))
    assert restored.history_ == featurizer.history_


def test_load_refuses_a_pickle_payload(tmp_path):
    import pickle

    from skssl import load

    path = tmp_path / "model.pt"
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}).fit(X).save(path)
    content = torch.load(path, weights_only=True)
    with open(path, "wb") as handle:  # a tampered file: same name, code inside
        torch.save({**content, "weights": Payload(tmp_path / "pwned")}, handle, pickle_module=pickle)
    with pytest.raises(ValueError, match="tampered"):
        load(path)
    assert not (tmp_path / "pwned").exists()


def test_load_refuses_another_format_version(tmp_path):
    import json

    from skssl import load

    path = tmp_path / "model.pt"
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}).fit(X).save(path)
    content = torch.load(path, weights_only=True)
    document = json.loads(content["skssl"])
    document["versions"]["format"] = 99
    torch.save({**content, "skssl": json.dumps(document)}, path)
    with pytest.raises(ValueError, match="file format 99.*refit"):
        load(path)


def test_save_refuses_module_backbones(tmp_path):
    featurizer = DenoisingAEFeaturizer(**{**TINY, "max_epochs": 1}, backbone=InterruptingNet).fit(X)
    with pytest.raises(TypeError, match="joblib.dump"):
        featurizer.save(tmp_path / "model.pt")


@pytest.mark.parametrize(
    "cls, params, state", [(DINOFeaturizer, {}, "center"), (SwAVFeaturizer, dict(queue_size=40), "queue")]
)
def test_saved_file_keeps_the_fitted_state(cls, params, state, tmp_path):
    featurizer = cls(**FAST, **params).fit(X)
    featurizer.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    torch.testing.assert_close(getattr(restored.task_, state), getattr(featurizer.task_, state))
    if cls is SwAVFeaturizer:
        assert restored.task_.queue_count == featurizer.task_.queue_count == 40
    np.testing.assert_array_equal(restored.transform(X), featurizer.transform(X))


@pytest.mark.parametrize("cls", [ContextEncoderFeaturizer, ExemplarFeaturizer])
def test_save_and_load_give_the_same_features(cls, tmp_path):
    X = load_digits().data[:64]
    featurizer = cls(**FAST).fit(X)
    featurizer.save(tmp_path / "model.pt")
    np.testing.assert_array_equal(load(tmp_path / "model.pt").transform(X), featurizer.transform(X))


# One error boundary for files: every failure is a ValueError or the right OSError,
# naming the path, with no torch text (not even in the chained traceback).

SMALL = dict(max_epochs=1, batch_size=16, device="cpu", random_state=0)
DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
DIGITS_X, DIGITS_Y = DIGITS_X[:64], DIGITS_Y[:64]
TORCH_TEXT = ("weights_only", "state_dict", "PytorchStreamReader", "inline_container", "Unpickler")


def _featurizer():
    return RotNetFeaturizer(**SMALL).fit(DIGITS_X)


def _supervised():
    from skssl import SupervisedClassifier

    return SupervisedClassifier(**SMALL).fit(DIGITS_X, DIGITS_Y)


def _fine_tuned():
    from skssl import FineTunedClassifier

    return FineTunedClassifier(RotNetFeaturizer(**SMALL), semi_supervised=None, **SMALL).fit(DIGITS_X, DIGITS_Y)


MODELS = {"featurizer": _featurizer, "supervised": _supervised, "fine_tuned": _fine_tuned}


@pytest.fixture(scope="module", params=list(MODELS))
def saved(request, tmp_path_factory):
    """A fitted model of each kind, its file and the file's content."""
    model = MODELS[request.param]()
    path = tmp_path_factory.mktemp(request.param) / "model.pt"
    model.save(path)
    return model, path, torch.load(path, weights_only=True)


def _assert_clean(excinfo, path):
    """The error names ``path`` and carries no torch text, in its message or its chain."""
    import traceback

    shown = "".join(traceback.format_exception(excinfo.value))
    assert str(path) in str(excinfo.value)
    assert not [text for text in TORCH_TEXT if text in shown], shown


def _document(content):
    import json

    return json.loads(content["skssl"])


def _with_document(content, change):
    import json

    document = _document(content)
    change(document)
    return {**content, "skssl": json.dumps(document)}


def _first_weight(content):
    return next(name for name, value in content["weights"].items() if value.dim())


DAMAGES = {
    "truncated": lambda path, content: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "empty": lambda path, content: path.write_bytes(b""),
    "random_bytes": lambda path, content: path.write_bytes(np.random.default_rng(0).bytes(5000)),
    "torch_file_not_skssl": lambda path, content: torch.save({"a": torch.zeros(3)}, path),
    "bare_tensor": lambda path, content: torch.save(torch.zeros(3), path),
    "damaged_json": lambda path, content: torch.save({**content, "skssl": content["skssl"][:-20]}, path),
    "json_not_an_object": lambda path, content: torch.save({**content, "skssl": "[1, 2]"}, path),
    "no_parameters": lambda path, content: torch.save(_with_document(content, lambda d: d.pop("parameters")), path),
    "no_fitted_attribute": lambda path, content: torch.save(
        _with_document(content, lambda d: d["fitted"].pop("image_shape_")), path
    ),
    "unknown_parameter": lambda path, content: torch.save(
        _with_document(content, lambda d: d["parameters"].update(bogus=1)), path
    ),
    "bad_parameter_value": lambda path, content: torch.save(
        _with_document(content, lambda d: d["parameters"].update(precision="float8")), path
    ),
    "wrong_weight_shape": lambda path, content: torch.save(
        {**content, "weights": {**content["weights"], _first_weight(content): torch.zeros(3)}}, path
    ),
    "missing_weight": lambda path, content: torch.save(
        {**content, "weights": {k: v for k, v in content["weights"].items() if k != _first_weight(content)}}, path
    ),
    "weights_not_a_dict": lambda path, content: torch.save({**content, "weights": [1, 2]}, path),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_or_foreign_file_is_a_value_error_naming_it(saved, damage, tmp_path):
    _, original, content = saved
    path = tmp_path / "model.pt"
    shutil.copy(original, path)
    DAMAGES[damage](path, content)
    with pytest.raises(ValueError) as excinfo:
        load(path)
    _assert_clean(excinfo, path)


@pytest.mark.parametrize("packing", ["inside_a_torch_file", "plain_pickle"])
def test_a_pickle_payload_runs_no_code_and_gets_no_advice_to_run_it(packing, tmp_path):
    import pickle

    path, marker = tmp_path / "model.pt", tmp_path / "pwned"
    with open(path, "wb") as handle:
        if packing == "plain_pickle":
            pickle.dump(Payload(marker), handle)
        else:
            torch.save({"skssl": "{}", "weights": Payload(marker)}, handle, pickle_module=pickle)
    with pytest.raises(ValueError, match="none of") as excinfo:
        load(path)
    assert not marker.exists()
    _assert_clean(excinfo, path)


def test_a_missing_path_or_a_folder_is_the_matching_os_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file") as excinfo:
        load(tmp_path / "missing.pt")
    _assert_clean(excinfo, tmp_path / "missing.pt")
    with pytest.raises(IsADirectoryError, match="is a folder") as excinfo:
        load(tmp_path)
    _assert_clean(excinfo, tmp_path)


def _read_only_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "model.pt"


SAVE_TARGETS = {
    "missing_folder": (FileNotFoundError, lambda tmp_path: tmp_path / "missing" / "model.pt"),
    "parent_is_a_file": (
        NotADirectoryError,
        lambda tmp_path: (tmp_path / "file").touch() or tmp_path / "file" / "m.pt",
    ),
    "target_is_a_folder": (IsADirectoryError, lambda tmp_path: (tmp_path / "folder").mkdir() or tmp_path / "folder"),
    "read_only_folder": (PermissionError, _read_only_folder),
}


@pytest.mark.parametrize("target", list(SAVE_TARGETS))
def test_save_where_it_cannot_write_is_the_matching_os_error_and_leaves_nothing(saved, target, tmp_path):
    model, _, _ = saved
    error, make_path = SAVE_TARGETS[target]
    path = make_path(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(error) as excinfo:
        model.save(path)
    _assert_clean(excinfo, path)
    assert sorted(tmp_path.rglob("*")) == before  # no partial file


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_save_leaves_the_old_file_intact_and_no_partial_file(saved, failure, tmp_path, monkeypatch):
    model, _, _ = saved
    path = tmp_path / "model.pt"
    model.save(path)
    before = path.read_bytes()
    save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        with open(f, "wb") if isinstance(f, (str, os.PathLike)) else f as handle:
            handle.write(b"half a model")  # the failure comes mid-write
        raise failure

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(type(failure)):
        model.save(path)
    monkeypatch.setattr(torch, "save", save)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    assert type(load(path)) is type(model)


def _assert_same_parameters(restored, original):
    for name, value in original.get_params(deep=False).items():
        if hasattr(value, "get_params"):
            _assert_same_parameters(getattr(restored, name), value)
            continue
        assert getattr(restored, name) == value, name
        assert type(getattr(restored, name)) is type(value), name


def test_numpy_scalars_paths_and_devices_come_back_equal_and_of_their_type(tmp_path):
    values = dict(
        batch_size=np.int64(16),
        learning_rate=np.float32(1e-3),
        compile=np.bool_(False),
        layer=np.str_("conv2"),
        backbone_kwargs={"widths": (np.int64(8), 8, 8)},
        checkpoint_dir=tmp_path / "checkpoints",
        device=torch.device("cpu"),
    )
    featurizer = RotNetFeaturizer(**{**SMALL, **values}).fit(DIGITS_X)
    featurizer.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    _assert_same_parameters(restored, featurizer)
    assert type(restored.backbone_kwargs["widths"][0]) is np.int64
    np.testing.assert_array_equal(restored.transform(DIGITS_X), featurizer.transform(DIGITS_X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_model_tuned_by_grid_search_saves_and_loads(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(RotNetFeaturizer(**SMALL), LogisticRegression(max_iter=20))
    search = GridSearchCV(pipeline, {"rotnetfeaturizer__max_epochs": np.array([1])}, cv=2).fit(DIGITS_X, DIGITS_Y)
    featurizer = search.best_estimator_[0]
    assert type(featurizer.max_epochs) is np.int64  # what the grid hands over
    featurizer.save(tmp_path / "model.pt")
    _assert_same_parameters(load(tmp_path / "model.pt"), featurizer)


def test_classifiers_keep_numpy_parameters_nested_ones_too(tmp_path):
    from skssl import FineTunedClassifier, SupervisedClassifier

    featurizer = RotNetFeaturizer(**SMALL, backbone_kwargs={"widths": (np.int64(8), 8, 8)})
    fine_tuned = FineTunedClassifier(featurizer, semi_supervised=None, **{**SMALL, "max_epochs": np.int64(1)})
    supervised = SupervisedClassifier(**{**SMALL, "batch_size": np.int64(16)})
    for classifier in (fine_tuned, supervised):
        classifier.fit(DIGITS_X, DIGITS_Y).save(tmp_path / "model.pt")
        restored = load(tmp_path / "model.pt")
        _assert_same_parameters(restored, classifier)
        np.testing.assert_array_equal(restored.predict_proba(DIGITS_X), classifier.predict_proba(DIGITS_X))


def test_save_refuses_a_value_it_could_not_restore(saved, tmp_path):
    import copy

    model = copy.deepcopy(saved[0])
    holder = model.featurizer if hasattr(model, "featurizer") else model  # a nested estimator too
    holder.set_params(backbone_kwargs={"widths": object()})  # would come back as a string
    with pytest.raises(TypeError, match="backbone_kwargs"):
        model.save(tmp_path / "model.pt")
    assert not list(tmp_path.iterdir())


def test_a_file_of_format_1_still_loads(tmp_path):
    featurizer = _featurizer()
    featurizer.save(tmp_path / "model.pt")
    content = torch.load(tmp_path / "model.pt", weights_only=True)
    torch.save(_with_document(content, lambda d: d["versions"].update(format=1)), tmp_path / "model.pt")
    np.testing.assert_array_equal(load(tmp_path / "model.pt").transform(DIGITS_X), featurizer.transform(DIGITS_X))


def test_a_cpc_model_saved_before_its_grid_read_out_keeps_reading_whole_images(tmp_path):
    import pickle

    from skssl import CPCFeaturizer

    featurizer = CPCFeaturizer(**SMALL, readout="image").fit(DIGITS_X)
    before = featurizer.transform(DIGITS_X)  # 512 features from the whole image
    featurizer.save(tmp_path / "model.pt")
    content = torch.load(tmp_path / "model.pt", weights_only=True)
    older = _with_document(content, lambda document: document["parameters"].pop("readout"))
    torch.save(older, tmp_path / "model.pt")
    assert "readout" not in _document(torch.load(tmp_path / "model.pt", weights_only=True))["parameters"]
    loaded = load(tmp_path / "model.pt")
    assert loaded.readout == "image"
    np.testing.assert_array_equal(loaded.transform(DIGITS_X), before)
    del featurizer.__dict__["readout"]  # as pickled by an skssl without the parameter
    unpickled = pickle.loads(pickle.dumps(featurizer))
    assert unpickled.readout == "image"
    np.testing.assert_array_equal(unpickled.transform(DIGITS_X), before)
    assert CPCFeaturizer().readout == "patches"  # new models read the grid
