"""Checkpoints (``skssl._checkpoint``): a fit resumed after an interruption, even a
SIGKILL, ends with the weights and the fitted state of an uninterrupted one; checkpoints
are written every n epochs; a checkpoint of other images is refused."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import (
    BarlowTwinsFeaturizer,
    BYOLFeaturizer,
    DeepClusterFeaturizer,
    DenoisingAEFeaturizer,
    DINOFeaturizer,
    MoCoFeaturizer,
    RotNetFeaturizer,
    SimCLRFeaturizer,
    SwAVFeaturizer,
    VICRegFeaturizer,
)

from _testing import InterruptingNet, assert_same_weights, fit_settings

X = load_digits().data[:96]
TINY = fit_settings(4, 32)  # 3 steps per epoch


def _weights(featurizer):
    return featurizer.task_.state_dict()


def test_checkpoint_resume_gives_the_uninterrupted_weights(tmp_path):
    InterruptingNet.calls = 0
    kwargs = dict(**TINY, backbone=InterruptingNet)
    uninterrupted = DenoisingAEFeaturizer(**kwargs, backbone_kwargs={"interrupt_at": None}).fit(X)
    interrupted = DenoisingAEFeaturizer(**kwargs, backbone_kwargs={"interrupt_at": 8}, checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match="interrupted"):
        interrupted.fit(X)
    # the same parameters as the interrupted run (a checkpoint refuses others); the count is past 8
    resumed = DenoisingAEFeaturizer(
        **kwargs, backbone_kwargs={"interrupt_at": 8}, checkpoint_dir=tmp_path, warm_start=True
    ).fit(X)
    assert resumed.n_iter_ == 4
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in uninterrupted.history_]
    assert_same_weights(_weights(resumed), _weights(uninterrupted))


def test_checkpoint_of_other_images_is_refused(tmp_path):
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match="written for image shape"):
        RotNetFeaturizer(**TINY, checkpoint_dir=tmp_path, warm_start=True).fit(np.zeros((40, 16, 16)))


def test_checkpoint_every_n_epochs(tmp_path):
    featurizer = RotNetFeaturizer(**TINY, checkpoint_dir=tmp_path, checkpoint_every=3)
    written = []
    make_writer = featurizer._checkpoint_writer

    def spying_writer(stage, max_epochs, **kwargs):
        write = make_writer(stage, max_epochs, **kwargs)

        def spy(state):
            write(state)
            if (tmp_path / "checkpoint.pt").exists():
                written.append(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"][-1]["epoch"])

        return spy

    featurizer._checkpoint_writer = spying_writer
    featurizer.fit(X)
    assert sorted(set(written)) == [3, 4]
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "cls, params",
    [
        (MoCoFeaturizer, {}),
        (BYOLFeaturizer, {}),
        (DINOFeaturizer, dict(n_local_crops=1)),
        (SwAVFeaturizer, dict(n_local_crops=1, queue_size=40)),
        (DeepClusterFeaturizer, dict(reassign=3)),  # step 8 is in the middle of a 3-epoch round
    ],
    ids=["moco", "byol", "dino", "swav", "deepcluster"],
)
def test_checkpoint_resume_restores_the_fitted_state(cls, params, tmp_path, monkeypatch):
    """Interrupt at step 8 (epoch 3 of 4), resume: the weights and every fitted state
    (queue, EMA target, centre, prototypes' queue, pseudo-labels) match bit for bit."""
    kwargs = dict(max_epochs=4, batch_size=32, device="cpu", random_state=0, **params)  # 3 steps per epoch
    uninterrupted = cls(**kwargs).fit(X)
    task_class = type(uninterrupted.task_)
    after_step, calls = task_class.after_step, []

    def interrupting_after_step(self, progress):
        calls.append(progress)
        if len(calls) == 8:
            raise KeyboardInterrupt
        after_step(self, progress)

    monkeypatch.setattr(task_class, "after_step", interrupting_after_step)
    with pytest.warns(UserWarning, match="interrupted"):
        cls(**kwargs, checkpoint_dir=tmp_path).fit(X)
    monkeypatch.setattr(task_class, "after_step", after_step)
    resumed = cls(**kwargs, checkpoint_dir=tmp_path, warm_start=True).fit(X)
    expected = uninterrupted.task_.state_dict()
    for name, value in resumed.task_.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    """Kill a fitting process mid-run, resume from its checkpoint, compare weights."""
    script = textwrap.dedent(
        f"""
        import time
        from sklearn.datasets import load_digits
        from skssl import RotNetFeaturizer
        import skssl._training as training
        import skssl._threads
        skssl._threads.ADAPT = False  # as tests/conftest.py: the threads must not follow the load
        slow_epoch = training.to_unit
        def to_unit(batch, value_range):
            time.sleep(0.05)  # make each epoch long enough to kill mid-run
            return slow_epoch(batch, value_range)
        training.to_unit = to_unit
        RotNetFeaturizer(max_epochs=8, batch_size=32, device="cpu", random_state=0,
                         checkpoint_dir={str(tmp_path)!r}).fit(load_digits().data[:320])
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    checkpoint = tmp_path / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["history"][-1]["epoch"] >= 2:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    epochs_done = torch.load(checkpoint, weights_only=True)["history"][-1]["epoch"]
    assert 2 <= epochs_done < 8, "the run was not killed mid-way"

    data = load_digits().data[:320]
    kwargs = dict(max_epochs=8, batch_size=32, device="cpu", random_state=0)
    resumed = RotNetFeaturizer(**kwargs, checkpoint_dir=tmp_path, warm_start=True).fit(data)
    uninterrupted = RotNetFeaturizer(**kwargs).fit(data)
    assert_same_weights(_weights(resumed), _weights(uninterrupted))
    np.testing.assert_array_equal(resumed.transform(data), uninterrupted.transform(data))


# Checkpoints know whose they are: another method, other parameters or other data are
# refused, naming what differs; a damaged file is refused before anything is loaded.

SMALL = dict(max_epochs=1, batch_size=16, device="cpu", random_state=0)
DIGITS_X, DIGITS_Y = load_digits(return_X_y=True)
DIGITS_X, DIGITS_Y = DIGITS_X[:64], DIGITS_Y[:64]
TORCH_TEXT = ("weights_only", "state_dict", "PytorchStreamReader", "Unpickler")


def _refused(excinfo, path):
    """The error names ``path`` and carries no torch text, in its message or its chain."""
    import traceback

    shown = "".join(traceback.format_exception(excinfo.value))
    assert str(path) in str(excinfo.value)
    assert not [text for text in TORCH_TEXT if text in shown], shown


def _resume(first, second, tmp_path, X=DIGITS_X):
    first.set_params(checkpoint_dir=tmp_path).fit(X)
    return second.set_params(checkpoint_dir=tmp_path, warm_start=True)


@pytest.mark.parametrize("other", [VICRegFeaturizer, BarlowTwinsFeaturizer])
def test_warm_start_refuses_another_methods_checkpoint(other, tmp_path):
    resumed = _resume(SimCLRFeaturizer(**SMALL), other(**{**SMALL, "max_epochs": 2}), tmp_path)
    with pytest.raises(ValueError, match=f"written by a SimCLRFeaturizer, not a {other.__name__}") as excinfo:
        resumed.fit(DIGITS_X)
    _refused(excinfo, tmp_path / "checkpoint.pt")


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(projection_dim=64), r"projection_dim=128 \(now 64\)"),  # another network
        (dict(temperature=0.9), r"temperature=0.5 \(now 0.9\)"),  # another objective
        (dict(learning_rate=0.1), r"learning_rate=0.001 \(now 0.1\)"),  # the optimizer's would win
    ],
)
def test_warm_start_refuses_a_checkpoint_of_other_parameters_naming_them(change, named, tmp_path):
    resumed = _resume(SimCLRFeaturizer(**SMALL), SimCLRFeaturizer(**{**SMALL, "max_epochs": 2}, **change), tmp_path)
    with pytest.raises(ValueError, match=named) as excinfo:
        resumed.fit(DIGITS_X)
    _refused(excinfo, tmp_path / "checkpoint.pt")


def test_warm_start_trains_a_checkpoint_longer_under_other_run_settings(tmp_path):
    first = SimCLRFeaturizer(**SMALL)
    resumed = _resume(first, SimCLRFeaturizer(**{**SMALL, "max_epochs": 2}, verbose=0, tol=0.5), tmp_path).fit(DIGITS_X)
    assert resumed.n_iter_ == 2 and resumed.history_[0]["loss"] == first.history_[0]["loss"]


def test_warm_start_refuses_a_checkpoint_of_other_images(tmp_path):
    resumed = _resume(RotNetFeaturizer(**SMALL), RotNetFeaturizer(**SMALL), tmp_path)
    with pytest.raises(ValueError, match="written for 64 images, not 80"):
        resumed.fit(load_digits().data[:80])


def test_classifiers_refuse_a_checkpoint_of_other_parameters(tmp_path):
    from sklearn.frozen import FrozenEstimator

    from skssl import FineTunedClassifier, SupervisedClassifier

    SupervisedClassifier(**SMALL, checkpoint_dir=tmp_path).fit(DIGITS_X, DIGITS_Y)
    with pytest.raises(ValueError, match=r"augment=False \(now True\)"):
        SupervisedClassifier(**SMALL, augment=True, checkpoint_dir=tmp_path, warm_start=True).fit(DIGITS_X, DIGITS_Y)
    featurizers = [SimCLRFeaturizer(**SMALL, temperature=t).fit(DIGITS_X) for t in (0.5, 0.9)]
    settings = dict(semi_supervised=None, checkpoint_dir=tmp_path, **SMALL)
    FineTunedClassifier(FrozenEstimator(featurizers[0]), **settings).fit(DIGITS_X, DIGITS_Y)
    with pytest.raises(ValueError, match=r"featurizer.estimator.temperature=0.5 \(now 0.9\)"):
        FineTunedClassifier(FrozenEstimator(featurizers[1]), **settings, warm_start=True).fit(DIGITS_X, DIGITS_Y)


def test_fine_tuning_refuses_the_pretext_checkpoint_of_another_method(tmp_path):
    from skssl import FineTunedClassifier

    settings = dict(semi_supervised=None, checkpoint_dir=tmp_path, **SMALL)
    FineTunedClassifier(SimCLRFeaturizer(**SMALL), **settings).fit(DIGITS_X, DIGITS_Y)
    resumed = FineTunedClassifier(VICRegFeaturizer(**SMALL), **settings, warm_start=True)
    with pytest.raises(ValueError, match="written by a SimCLRFeaturizer, not a VICRegFeaturizer"):
        resumed.fit(DIGITS_X, DIGITS_Y)


class Payload:
    """Code that would run on unpickling: it writes a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def _edited(change):
    def damage(path):
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)

    return damage


def _payload(path):
    import pickle

    with open(path, "wb") as handle:
        torch.save({"task": Payload(path.parent / "pwned")}, handle, pickle_module=pickle)


CHECKPOINT_DAMAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:1000]),
    "empty": lambda path: path.write_bytes(b""),
    "random_bytes": lambda path: path.write_bytes(np.random.default_rng(0).bytes(3000)),
    "torch_file_not_a_checkpoint": lambda path: torch.save({"a": torch.zeros(2)}, path),
    "pickle_payload": _payload,
    "no_optimizer": _edited(lambda state: state.pop("optimizer")),
    "damaged_record": _edited(lambda state: state.update(skssl_checkpoint="{not json")),
    "wrong_weight_shape": _edited(lambda state: state["task"].update({next(iter(state["task"])): torch.zeros(3)})),
    "written_by_an_earlier_skssl": _edited(lambda state: state.pop("skssl_checkpoint")),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGES))
@pytest.mark.parametrize("kind", ["featurizer", "supervised"])
def test_a_damaged_checkpoint_is_refused_whole_and_left_as_it_is(kind, damage, tmp_path):
    from skssl import SupervisedClassifier

    if kind == "featurizer":
        estimator, path, fit = RotNetFeaturizer(**SMALL), tmp_path / "checkpoint.pt", lambda e: e.fit(DIGITS_X)
    else:
        estimator, path, fit = SupervisedClassifier(**SMALL), tmp_path / "fit.pt", lambda e: e.fit(DIGITS_X, DIGITS_Y)
    fit(estimator.set_params(checkpoint_dir=tmp_path))
    CHECKPOINT_DAMAGES[damage](path)
    damaged = path.read_bytes()
    resumed = clone(estimator).set_params(warm_start=True, max_epochs=2)
    with pytest.raises(ValueError) as excinfo:
        fit(resumed)
    _refused(excinfo, path)
    assert path.read_bytes() == damaged and not hasattr(resumed, "task_")
    assert not (tmp_path / "pwned").exists()


def _file(tmp_path):
    (tmp_path / "file").touch()
    return tmp_path / "file"


def _read_only(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "read_only").mkdir(mode=0o500)
    return tmp_path / "read_only"


def _folder_as_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").mkdir()
    return tmp_path


CHECKPOINT_DIRS = {
    "parent_is_a_file": (NotADirectoryError, lambda tmp_path: _file(tmp_path) / "checkpoints"),
    "is_a_file": (NotADirectoryError, _file),
    "read_only": (PermissionError, _read_only),
    "checkpoint_is_a_folder": (IsADirectoryError, _folder_as_checkpoint),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_DIRS))
def test_an_unusable_checkpoint_dir_fails_before_the_first_epoch(case, tmp_path, capsys):
    from skssl import SupervisedClassifier

    error, make = CHECKPOINT_DIRS[case]
    folder = make(tmp_path)
    for estimator, y in [(RotNetFeaturizer(**SMALL), None), (SupervisedClassifier(**SMALL), DIGITS_Y)]:
        if case == "checkpoint_is_a_folder" and y is not None:
            (folder / "fit.pt").mkdir()
        with pytest.raises(error) as excinfo:
            estimator.set_params(checkpoint_dir=folder, verbose=1).fit(DIGITS_X, y)
        assert str(folder) in str(excinfo.value) and "checkpoint" in str(excinfo.value)
        assert "epoch" not in capsys.readouterr().err  # no epoch ran


def test_fine_tuning_checks_its_checkpoint_dir_before_pretext_training(tmp_path, capsys):
    from skssl import FineTunedClassifier

    featurizer = RotNetFeaturizer(**SMALL, verbose=1, checkpoint_dir=tmp_path / "pretext")  # a usable one
    classifier = FineTunedClassifier(featurizer, semi_supervised=None, checkpoint_dir=_file(tmp_path), **SMALL)
    with pytest.raises(NotADirectoryError, match="is a file"):
        classifier.fit(DIGITS_X, DIGITS_Y)
    assert "epoch" not in capsys.readouterr().err
