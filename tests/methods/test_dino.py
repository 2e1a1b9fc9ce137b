"""DINO: the teacher, the centre and the temperature schedule in the fitted task."""

import copy

import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl.methods.dino import DINOFeaturizer, DINOTask

from _testing import FAST

X_SMALL = load_digits().data[:96]


def _parameters(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _digits(n):
    return torch.as_tensor(X_SMALL[:n], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0


def test_dino_teacher_and_centre_live_in_the_fitted_task():
    featurizer = DINOFeaturizer(**FAST).fit(X_SMALL)
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X_SMALL)
    task = featurizer.task_
    assert isinstance(task, DINOTask) and {"center", "progress"} <= set(dict(task.named_buffers()))
    assert not {"center", "teacher_backbone"} & set(featurizer.get_params())
    teacher, student = _parameters(task.teacher_backbone), _parameters(task.backbone)
    start = _parameters(untrained.task_.teacher_backbone)
    assert not torch.equal(teacher, start) and not torch.equal(teacher, student)  # it moved, and lags
    torch.testing.assert_close(start, _parameters(untrained.task_.backbone))  # a copy at the start
    assert task.center.abs().sum() > 0 and float(task.progress) == 1.0
    torch.testing.assert_close(untrained.task_.center, torch.zeros(256))
    assert task.head[-1].weight.shape == (256, 64)  # out_dim prototypes of the bottleneck
    assert task.head(torch.randn(4, featurizer._n_features_out)).abs().max() <= 1 + 1e-6  # the logits are cosines


def test_dino_centre_moves_as_an_ema_of_the_teacher_outputs_on_global_views():
    featurizer = DINOFeaturizer(n_local_crops=2, center_momentum=0.75, **FAST).fit(X_SMALL)
    task = copy.deepcopy(featurizer.task_).train()
    inputs, targets = task.views(_digits(16), torch.Generator().manual_seed(0))
    assert inputs.shape[0] == 4 * 16
    with torch.no_grad():
        teacher = task.teacher_head(task.features(inputs[:32], task.teacher_backbone))  # (2B, K)
    before = task.center.clone()
    task.loss(inputs, targets)
    torch.testing.assert_close(task.center, before, rtol=0, atol=0)  # it moves after the step
    task.after_step(1.0)
    torch.testing.assert_close(task.center, 0.75 * before + 0.25 * teacher.mean(dim=0))
    task.after_step(1.0)  # no new teacher outputs: the centre stays
    torch.testing.assert_close(task.center, 0.75 * before + 0.25 * teacher.mean(dim=0))


def test_dino_teacher_temperature_warms_up_and_momentum_rises():
    featurizer = DINOFeaturizer(teacher_temperature=(0.04, 0.07), teacher_warmup=0.5, **FAST).fit(X_SMALL)
    task = copy.deepcopy(featurizer.task_)
    for progress, expected in [(0.0, 0.04), (0.25, 0.055), (0.5, 0.07), (1.0, 0.07)]:
        task.progress.fill_(progress)
        assert float(task.teacher_temperature()) == pytest.approx(expected)
    assert task.momentum(0.0) == pytest.approx(0.99) and task.momentum(1.0) == 1.0
    constant = DINOFeaturizer(teacher_temperature=0.05, teacher_warmup=0.0, **FAST).fit(X_SMALL).task_
    assert float(constant.teacher_temperature()) == pytest.approx(0.05)
