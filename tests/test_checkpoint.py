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
from sklearn.datasets import load_digits

from skssl import (
    BYOLFeaturizer,
    DeepClusterFeaturizer,
    DenoisingAEFeaturizer,
    DINOFeaturizer,
    MoCoFeaturizer,
    RotNetFeaturizer,
    SwAVFeaturizer,
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
    resumed = DenoisingAEFeaturizer(
        **kwargs, backbone_kwargs={"interrupt_at": None}, checkpoint_dir=tmp_path, warm_start=True
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

    def spying_writer(stage, max_epochs):
        write = make_writer(stage, max_epochs)

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
