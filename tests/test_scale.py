"""Data bigger than memory (memmap streaming) and data-parallel training under torchrun."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import DenoisingAEFeaturizer, RotNetFeaturizer, SimCLRFeaturizer, _training
from skssl.registry import METHODS

from _testing import fit_settings

FAST = fit_settings(2, 64)


@pytest.fixture
def mnist_sized_memmap(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (9000, 28, 28), dtype=np.uint8)
    stored = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=images.shape)
    stored[:] = images
    stored.flush()
    return images, np.load(tmp_path / "images.npy", mmap_mode="r")


def test_fit_on_a_memmap_streams_batches_and_matches_in_memory_fit(mnist_sized_memmap, monkeypatch):
    images, stored = mnist_sized_memmap
    rows_moved = []
    to_tensor = _training.to_tensor

    def counting_to_tensor(rows, device, **kwargs):
        rows_moved.append(len(rows))
        assert rows.dtype == np.uint8  # uint8 until the batch
        return to_tensor(rows, device, **kwargs)

    monkeypatch.setattr(_training, "to_tensor", counting_to_tensor)
    streamed = DenoisingAEFeaturizer(**{**FAST, "max_epochs": 1}).fit(stored)
    monkeypatch.undo()
    assert rows_moved and max(rows_moved) <= 4096 < len(images)  # never the whole set
    in_memory = DenoisingAEFeaturizer(**{**FAST, "max_epochs": 1}).fit(images)
    assert [h["loss"] for h in streamed.history_] == [h["loss"] for h in in_memory.history_]
    np.testing.assert_array_equal(streamed.transform(stored[:100]), in_memory.transform(images[:100]))


def test_classifier_streams_a_memmap_in_its_semi_supervised_stage(mnist_sized_memmap, monkeypatch):
    from sklearn.frozen import FrozenEstimator

    from skssl import FineTunedClassifier
    from skssl._training import take

    images, stored = mnist_sized_memmap
    y = np.where(np.arange(len(images)) < 300, np.arange(len(images)) % 3, -1)
    featurizer = FrozenEstimator(DenoisingAEFeaturizer(**{**FAST, "max_epochs": 1}).fit(images))
    read_from_file = []
    monkeypatch.setattr(
        _training,
        "take",
        lambda rows, indices, device: (
            read_from_file.append(isinstance(rows, np.ndarray) and np.shares_memory(rows, stored))
            or take(rows, indices, device)
        ),
    )
    classifier = FineTunedClassifier(
        featurizer, max_epochs=1, semi_supervised_epochs=1, batch_size=64, device="cpu", random_state=0
    )
    classifier.fit(stored, y)
    # the semi-supervised stage (all 9,000 rows) read its batches from the file
    assert sum(read_from_file) == len(images) // 64  # whole batches
    in_memory = clone(classifier).fit(images, y)
    np.testing.assert_array_equal(classifier.predict_proba(stored[:50]), in_memory.predict_proba(images[:50]))


def test_float_memmap_is_never_copied_whole(tmp_path, monkeypatch):
    X = load_digits().data.astype(np.float32)  # 0..16 floats
    stored = np.lib.format.open_memmap(tmp_path / "digits.npy", mode="w+", dtype=np.float32, shape=X.shape)
    stored[:] = X
    stored.flush()
    stored = np.load(tmp_path / "digits.npy", mmap_mode="r")
    rows_moved = []
    to_tensor = _training.to_tensor
    monkeypatch.setattr(
        _training, "to_tensor", lambda rows, device, **kw: rows_moved.append(len(rows)) or to_tensor(rows, device, **kw)
    )
    featurizer = RotNetFeaturizer(max_epochs=1, batch_size=32, device="cpu", random_state=0).fit(stored)
    assert rows_moved[0] <= 4096 and set(rows_moved[1:]) == {32}  # statistics in chunks, then batches
    assert featurizer.value_range_ == (0.0, 16.0)
    assert featurizer.transform(stored).shape == (len(X), featurizer.transform(X[:1]).shape[1])


WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    from skssl import {cls}
    X = load_digits().data[:512]
    rank = int(os.environ["RANK"])
    featurizer = {cls}(max_epochs=3, batch_size=128, device="cpu", random_state=0,
                       checkpoint_dir=os.path.join(sys.argv[1], f"rank{{rank}}")).fit(X)
    with open(os.path.join(sys.argv[1], f"history{{rank}}.json"), "w") as f:
        json.dump([h["loss"] for h in featurizer.history_], f)
    """
)


def _torchrun(tmp_path, cls, nproc, worker=WORKER):
    script = tmp_path / "fit.py"
    script.write_text(worker if cls is None else worker.format(cls=cls))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(script),
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, f"torchrun exited with {done.returncode}:\n{done.stderr[-4000:]}"
    return [json.loads((tmp_path / f"history{rank}.json").read_text()) for rank in range(nproc)]


CLASSIFIER_WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from sklearn.datasets import load_digits
    from skssl import DenoisingAEFeaturizer, FineTunedClassifier
    X, y = load_digits(return_X_y=True)
    X, y = X[:512], np.where(np.arange(512) < 256, y[:512], -1)
    rank = int(os.environ["RANK"])
    classifier = FineTunedClassifier(
        DenoisingAEFeaturizer(max_epochs=2, batch_size=128, device="cpu", random_state=0),
        max_epochs=3, semi_supervised_epochs=2, batch_size=128, device="cpu", random_state=0,
        checkpoint_dir=os.path.join(sys.argv[1], f"rank{rank}"),
    ).fit(X, y)
    with open(os.path.join(sys.argv[1], f"history{rank}.json"), "w") as f:
        json.dump([h["loss"] for h in classifier.history_], f)
    """
)


@pytest.mark.slow
def test_torchrun_two_processes_fine_tune_like_one(tmp_path):
    """The classifier's stages under torchrun: the same global batch on 1 and 2 processes
    gives epoch losses that agree (batch norm and augmentation differ per process), and
    every process reports the same mean."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (single,) = _torchrun(tmp_path / "one", None, 1, worker=CLASSIFIER_WORKER)
    rank0, rank1 = _torchrun(tmp_path / "two", None, 2, worker=CLASSIFIER_WORKER)
    assert rank0 == rank1 and len(rank0) == 3 + 2
    np.testing.assert_allclose(rank0, single, rtol=0.15)
    assert (tmp_path / "two" / "rank0" / "fine_tune.pt").exists()
    assert not (tmp_path / "two" / "rank1").exists()  # only the main process writes


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["RotNetFeaturizer", "SimCLRFeaturizer"])
def test_torchrun_two_processes_follow_the_single_process_loss_curve(tmp_path, cls):
    """Same global batch (128) on 1 and on 2 gloo processes: the epoch losses agree.

    They are not bit-identical: batch norm sees each process's half of the batch, and
    SimCLR's augmentations are drawn per process. For SimCLR the test also shows that
    the negatives are gathered across processes: with each process's 64 images alone
    the NT-Xent loss would start about log(2) = 0.69 lower.
    """
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (single,) = _torchrun(tmp_path / "one", cls, 1)
    rank0, rank1 = _torchrun(tmp_path / "two", cls, 2)
    assert rank0 == rank1  # every process reports the mean over processes
    np.testing.assert_allclose(rank0, single, rtol=0.05)
    assert (tmp_path / "two" / "rank0" / "checkpoint.pt").exists()
    assert not (tmp_path / "two" / "rank1").exists()  # only the main process writes
    if cls == "SimCLRFeaturizer":
        half_batch = SimCLRFeaturizer(max_epochs=1, batch_size=64, device="cpu", random_state=0)
        local_only = half_batch.fit(load_digits().data[:512]).history_[0]["loss"]
        assert rank0[0] > local_only + 0.4, (rank0[0], local_only)


RANKS_WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from skssl import FineTunedClassifier, RotNetFeaturizer, SupervisedClassifier
    from skssl.datasets import load_digits_images, load_sample_patches
    from skssl.registry import METHODS
    X, y = load_digits_images(n_samples=128)
    colour = load_sample_patches(patch_size=16, n_patches=128, random_state=0)[0]
    short = dict(max_epochs=2, batch_size=32, device="cpu", random_state=0)
    models = {{name: (method.estimator(**short), colour if name in ("colorization", "split_brain") else X, None)
              for name, method in METHODS.items()}}
    models["supervised"] = (SupervisedClassifier(**short), X, y)
    partial = np.where(np.arange(len(y)) % 2 == 0, y, -1)
    fine_tuned = FineTunedClassifier(RotNetFeaturizer(**short), semi_supervised_epochs=1, **short)
    models["fine_tuned"] = (fine_tuned, X, partial)
    digests = {{}}
    for name, (estimator, images, labels) in models.items():
        estimator.fit(images, labels)
        state = estimator.task_.state_dict()
        digests[name] = {{key: hashlib.sha256(value.detach().contiguous().numpy().tobytes()).hexdigest()
                         for key, value in state.items() if isinstance(value, torch.Tensor)}}
        digests[name]["transform"] = hashlib.sha256(estimator.transform(images).tobytes()).hexdigest()
    with open(os.path.join(sys.argv[1], f"history{{os.environ['RANK']}}.json"), "w") as f:
        json.dump(digests, f)
    """
)


@pytest.mark.slow
def test_torchrun_every_rank_ends_with_the_same_model(tmp_path):
    """After a 2-process fit, every featurizer and classifier holds bitwise the same
    weights and buffers (batch-norm statistics, queues, centres, prototypes) on each
    process, and embeds alike: any process can embed or save."""
    rank0, rank1 = _torchrun(tmp_path, "", 2, worker=RANKS_WORKER)
    assert set(rank0) == {*METHODS, "supervised", "fine_tuned"}
    differing = {name: sorted(k for k in rank0[name] if rank0[name][k] != rank1[name].get(k)) for name in rank0}
    assert not {name: keys for name, keys in differing.items() if keys}
