"""MoCo: the queue and the key encoder live in the fitted task and travel with it."""

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import MoCoFeaturizer, load
from skssl.methods.moco import MoCoTask

from _testing import FAST

X_SMALL = load_digits().data[:96]


def _parameters(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_moco_queue_and_key_encoder_live_in_the_fitted_task(tmp_path):
    featurizer = MoCoFeaturizer(**FAST).fit(X_SMALL)
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X_SMALL)
    task = featurizer.task_
    assert isinstance(task, MoCoTask) and "queue" in dict(task.named_buffers())
    assert task.queue_length == len(X_SMALL)  # 4096 capped at the 96 images
    assert not {"queue", "key_backbone"} & set(featurizer.get_params())
    assert not torch.equal(task.queue, untrained.task_.queue)  # keys were enqueued
    torch.testing.assert_close(task.queue[:96].norm(dim=1), torch.ones(96))
    torch.testing.assert_close(task.queue[96:], untrained.task_.queue[96:])  # beyond the cap
    key, online = _parameters(task.key_backbone), _parameters(task.backbone)
    start = _parameters(untrained.task_.key_backbone)
    assert not torch.equal(key, start) and not torch.equal(key, online)  # it moved, and lags
    assert not any(p.requires_grad for p in task.parameters())

    featurizer.save(tmp_path / "moco.pt")
    restored = load(tmp_path / "moco.pt")
    assert restored.task_.queue_length == 96
    torch.testing.assert_close(restored.task_.queue, task.queue)
    np.testing.assert_array_equal(restored.transform(X_SMALL), featurizer.transform(X_SMALL))
