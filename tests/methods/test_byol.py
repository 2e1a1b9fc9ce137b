"""BYOL: the target network lags the online one, with a momentum that rises to one."""

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import BYOLFeaturizer
from skssl.methods._siamese import cosine_momentum
from skssl.methods.byol import BYOLTask

from _testing import FAST

X_SMALL = load_digits().data[:96]


def _parameters(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_byol_target_lives_in_the_fitted_task_and_lags_the_online_network():
    featurizer = BYOLFeaturizer(**FAST).fit(X_SMALL)
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X_SMALL)
    task = featurizer.task_
    assert isinstance(task, BYOLTask)
    target, online = _parameters(task.target_backbone), _parameters(task.backbone)
    start = _parameters(untrained.task_.target_backbone)
    assert not torch.equal(target, start) and not torch.equal(target, online)  # it moved, and lags
    torch.testing.assert_close(start, _parameters(untrained.task_.backbone))  # a copy at the start


def test_byol_momentum_rises_from_base_to_one_on_a_cosine():
    assert cosine_momentum(0.99, 0.0) == pytest.approx(0.99)
    assert cosine_momentum(0.99, 0.5) == pytest.approx(0.995)
    assert cosine_momentum(0.99, 1.0) == 1.0
    progress = np.linspace(0, 1, 11)
    assert np.all(np.diff([cosine_momentum(0.9, p) for p in progress]) > 0)

    task = copy.deepcopy(BYOLFeaturizer(**FAST).fit(X_SMALL).task_)
    assert task.momentum(0.0) == pytest.approx(0.99) and task.momentum(1.0) == 1.0
    before = _parameters(task.target_backbone)
    task.after_step(1.0)  # momentum 1: the target stays where it is
    torch.testing.assert_close(_parameters(task.target_backbone), before, rtol=0, atol=0)
    task.after_step(0.0)  # momentum 0.99: a step towards the online network
    expected = 0.99 * before + 0.01 * _parameters(task.backbone)
    torch.testing.assert_close(_parameters(task.target_backbone), expected)
