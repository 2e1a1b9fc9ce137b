"""Training that goes wrong: interruption, divergence, early stopping, checkpoints."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

from skssl import DenoisingAEFeaturizer, RotNetFeaturizer

X = load_digits().data[:96]
TINY = dict(max_epochs=4, batch_size=32, device="cpu", random_state=0)  # 3 steps per epoch


class InterruptingNet(nn.Module):
    """A conv net that raises KeyboardInterrupt on its ``interrupt_at``-th training call."""

    calls = 0

    def __init__(self, interrupt_at=None):
        super().__init__()
        self.interrupt_at = interrupt_at
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))

    def forward(self, x):
        if self.training and self.interrupt_at is not None:
            InterruptingNet.calls += 1
            if InterruptingNet.calls == self.interrupt_at:
                raise KeyboardInterrupt
        return self.body(x)


class Payload:
    """What an attacker would put in a model file: code that runs on unpickling."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def _weights(featurizer):
    return featurizer.task_.state_dict()


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_keyboard_interrupt_keeps_the_last_completed_epoch(tmp_path):
    InterruptingNet.calls = 0
    featurizer = DenoisingAEFeaturizer(
        **TINY, backbone=InterruptingNet, backbone_kwargs={"interrupt_at": 8}, checkpoint_dir=tmp_path
    )
    with pytest.warns(UserWarning, match=r"interrupted.*\(2 of 4\)"):
        featurizer.fit(X)  # step 8 is in epoch 3
    check_is_fitted(featurizer)
    assert featurizer.n_iter_ == 2 and len(featurizer.history_) == 2
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    _assert_same_weights(_weights(featurizer), saved["task"])
    assert np.isfinite(featurizer.transform(X)).all()


def test_checkpoint_resume_gives_the_uninterrupted_weights(tmp_path):
    InterruptingNet.calls = 0
    kwargs = dict(**TINY, backbone=InterruptingNet)
    uninterrupted = DenoisingAEFeaturizer(**kwargs, backbone_kwargs={"interrupt_at": None}).fit(X)
    interrupted = DenoisingAEFeaturizer(
        **kwargs, backbone_kwargs={"interrupt_at": 8}, checkpoint_dir=tmp_path
    )
    with pytest.warns(UserWarning, match="interrupted"):
        interrupted.fit(X)
    resumed = DenoisingAEFeaturizer(
        **kwargs, backbone_kwargs={"interrupt_at": None}, checkpoint_dir=tmp_path, warm_start=True
    ).fit(X)
    assert resumed.n_iter_ == 4
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in uninterrupted.history_]
    _assert_same_weights(_weights(resumed), _weights(uninterrupted))


def test_checkpoint_of_other_images_is_refused(tmp_path):
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}, checkpoint_dir=tmp_path).fit(X)
    with pytest.raises(ValueError, match="written for image shape"):
        RotNetFeaturizer(**TINY, checkpoint_dir=tmp_path, warm_start=True).fit(np.zeros((40, 16, 16)))


def test_checkpoint_every_n_epochs(tmp_path):
    featurizer = RotNetFeaturizer(**TINY, checkpoint_dir=tmp_path, checkpoint_every=3)
    written = []
    original = featurizer._write_checkpoint

    def spy(state):
        original(state)
        if (tmp_path / "checkpoint.pt").exists():
            written.append(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"][-1]["epoch"])

    featurizer._write_checkpoint = spy
    featurizer.fit(X)
    assert sorted(set(written)) == [3, 4]
    assert not list(tmp_path.glob("*.partial"))


def test_warm_start_trains_further():
    featurizer = RotNetFeaturizer(**{**TINY, "max_epochs": 2}).fit(X)
    first = {k: v.clone() for k, v in _weights(featurizer).items()}
    featurizer.set_params(warm_start=True, max_epochs=1).fit(X)
    assert featurizer.n_iter_ == 3
    assert [h["epoch"] for h in featurizer.history_] == [1, 2, 3]
    assert any(not torch.equal(first[k], v) for k, v in _weights(featurizer).items())


def test_early_stopping_and_convergence_warning():
    stopped = RotNetFeaturizer(**{**TINY, "max_epochs": 10}, tol=100.0, n_iter_no_change=2).fit(X)
    assert stopped.n_iter_ == 3  # epoch 1 improves on infinity, 2 and 3 do not by 100
    with pytest.warns(ConvergenceWarning, match="still improving"):
        RotNetFeaturizer(**{**TINY, "max_epochs": 2}, tol=0.0, n_iter_no_change=5).fit(X)


def test_divergence_leaves_the_featurizer_unfitted():
    featurizer = DenoisingAEFeaturizer(**{**TINY, "noise": "gaussian"}).fit(X)
    featurizer.set_params(learning_rate=1e30)
    with pytest.raises(ValueError, match="diverged and the featurizer is not fitted"):
        featurizer.fit(X)
    with pytest.raises(NotFittedError):
        featurizer.transform(X)


def test_fit_leaves_torch_global_state_alone():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    rng = torch.get_rng_state()
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}).fit(X)
    assert torch.get_default_dtype() == dtype and torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    """Kill a fitting process mid-run, resume from its checkpoint, compare weights."""
    script = textwrap.dedent(
        f"""
        import time
        from sklearn.datasets import load_digits
        from skssl import RotNetFeaturizer
        import skssl._training as training
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
    _assert_same_weights(_weights(resumed), _weights(uninterrupted))
    np.testing.assert_array_equal(resumed.transform(data), uninterrupted.transform(data))


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


def test_grid_search_is_deterministic_across_n_jobs():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X_all, y_all = load_digits(return_X_y=True)
    X_small, y_small = X_all[:120], y_all[:120]
    pipe = make_pipeline(RotNetFeaturizer(**{**TINY, "max_epochs": 1}), LogisticRegression(max_iter=200))
    grid = {"rotnetfeaturizer__max_epochs": [1, 2]}
    results = [GridSearchCV(pipe, grid, cv=2, n_jobs=n_jobs).fit(X_small, y_small) for n_jobs in (1, 2)]
    np.testing.assert_array_equal(*(r.cv_results_["mean_test_score"] for r in results))
    np.testing.assert_array_equal(*(r.best_estimator_[0].transform(X_small) for r in results))
    assert results[0].best_estimator_[0].history_ == [
        {**h, "seconds": results[0].best_estimator_[0].history_[i]["seconds"]}
        for i, h in enumerate(results[1].best_estimator_[0].history_)
    ]
