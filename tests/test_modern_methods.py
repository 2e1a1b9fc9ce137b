"""MoCo, BYOL, SimSiam, Barlow Twins and VICReg: losses against slow references,
scikit-learn's checks, evidence that each learns, and the momentum machinery."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from skssl import (
    BarlowTwinsFeaturizer,
    BYOLFeaturizer,
    DeepClusterFeaturizer,
    DINOFeaturizer,
    MoCoFeaturizer,
    SimSiamFeaturizer,
    SwAVFeaturizer,
    VICRegFeaturizer,
    load,
)
from skssl.evaluation import linear_probe
from skssl.losses import barlow_twins_loss, info_nce, negative_cosine, normalized_mse, vicreg_loss
from skssl.methods._siamese import cosine_momentum, ema_update
from skssl.methods.byol import BYOLTask
from skssl.methods.moco import MoCoTask

FAST = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
CLASSES = [MoCoFeaturizer, BYOLFeaturizer, SimSiamFeaturizer, BarlowTwinsFeaturizer, VICRegFeaturizer]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _unit(v):
    v = [float(x) for x in v]
    return [x / math.sqrt(sum(x**2 for x in v)) for x in v]


def _dot(u, v):
    return sum(float(a) * float(b) for a, b in zip(u, v))


# --- each loss against a slow, obvious reference ----------------------------------------


def info_nce_reference(query, key, negatives, temperature):
    """MoCo's Eq. (1), one query at a time: -log exp(q.k+/t) / sum over k+ and the negatives."""
    total = 0.0
    for q, k in zip(query, key):
        q, k = _unit(q), _unit(k)
        positive = math.exp(_dot(q, k) / temperature)
        others = sum(math.exp(_dot(q, _unit(n)) / temperature) for n in negatives)
        total += -math.log(positive / (positive + others))
    return total / len(query)


def normalized_mse_reference(prediction, target):
    """BYOL's Eq. (2): squared distance of the unit vectors, averaged over the batch."""
    rows = [sum((a - b) ** 2 for a, b in zip(_unit(p), _unit(z))) for p, z in zip(prediction, target)]
    return sum(rows) / len(rows)


def negative_cosine_reference(prediction, target):
    """SimSiam's D(p, z), averaged over the batch."""
    return -sum(_dot(_unit(p), _unit(z)) for p, z in zip(prediction, target)) / len(prediction)


def _column(z, j):
    return [float(row[j]) for row in z]


def _centred(values):
    mean = sum(values) / len(values)
    return [v - mean for v in values]


def barlow_twins_reference(z_a, z_b, lambd):
    """Barlow Twins' Eq. (1)-(2): Pearson correlations of every pair of dimensions."""
    d = z_a.shape[1]
    loss = 0.0
    for i in range(d):
        a = _centred(_column(z_a, i))
        for j in range(d):
            b = _centred(_column(z_b, j))
            c = _dot(a, b) / (math.sqrt(_dot(a, a)) * math.sqrt(_dot(b, b)))
            loss += (1 - c) ** 2 if i == j else lambd * c**2
    return loss


def vicreg_reference(z_a, z_b, sim_coeff, std_coeff, cov_coeff, eps=1e-4):
    """VICReg as in the authors' main_vicreg.py, written out with loops."""
    n, d = z_a.shape
    invariance = sum(float(z_a[b, j] - z_b[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)
    variance = covariance = 0.0
    for z in (z_a, z_b):
        columns = [_centred(_column(z, j)) for j in range(d)]
        for j in range(d):
            variance += max(0.0, 1 - math.sqrt(_dot(columns[j], columns[j]) / (n - 1) + eps)) / d / 2
        for i in range(d):
            for j in range(d):
                if i != j:
                    covariance += (_dot(columns[i], columns[j]) / (n - 1)) ** 2 / d
    return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


@pytest.mark.parametrize("temperature", [0.1, 0.2, 1.0])
def test_info_nce_matches_reference(temperature):
    query, key, negatives = _randn(5, 4, seed=0), _randn(5, 4, seed=1), _randn(7, 4, seed=2)
    assert float(info_nce(query, key, negatives, temperature)) == pytest.approx(
        info_nce_reference(query, key, negatives, temperature), rel=1e-5
    )


@pytest.mark.parametrize(
    "loss, reference",
    [(normalized_mse, normalized_mse_reference), (negative_cosine, negative_cosine_reference)],
)
def test_predictive_losses_match_reference_and_stop_the_target_gradient(loss, reference):
    prediction = _randn(6, 5, seed=0).requires_grad_(True)
    target = _randn(6, 5, seed=1).requires_grad_(True)
    value = loss(prediction, target)
    expected = reference(prediction.detach(), target.detach())
    assert float(value.detach()) == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert prediction.grad is not None and target.grad is None  # "treated as a constant"


def test_byol_loss_is_two_minus_two_cosine():
    prediction, target = _randn(6, 5, seed=0), _randn(6, 5, seed=1)
    cosine = F.cosine_similarity(prediction, target).mean()
    assert float(normalized_mse(prediction, target)) == pytest.approx(float(2 - 2 * cosine), rel=1e-5)


@pytest.mark.parametrize("lambd", [0.0, 5e-3, 0.1])
def test_barlow_twins_loss_matches_reference(lambd):
    z_a, z_b = _randn(8, 4, seed=0), _randn(8, 4, seed=1)
    assert float(barlow_twins_loss(z_a, z_b, lambd, eps=0.0)) == pytest.approx(
        barlow_twins_reference(z_a, z_b, lambd), rel=1e-5
    )


@pytest.mark.parametrize(
    "coefficients", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
)
def test_vicreg_loss_matches_reference(coefficients):
    z_a, z_b = 0.5 * _randn(8, 4, seed=0), _randn(8, 4, seed=1)  # half the dims below the hinge
    assert float(vicreg_loss(z_a, z_b, *coefficients)) == pytest.approx(
        vicreg_reference(z_a, z_b, *coefficients), rel=1e-5
    )


@pytest.mark.parametrize("loss", [barlow_twins_loss, vicreg_loss])
def test_batch_statistics_losses_are_finite_for_one_image(loss):
    z = torch.ones(1, 4)
    assert torch.isfinite(loss(z, z))


@pytest.mark.parametrize(
    "loss",
    [
        lambda a, b: info_nce(a, b, b.flip(0)),
        normalized_mse,
        negative_cosine,
        barlow_twins_loss,
        vicreg_loss,
    ],
    ids=["info_nce", "normalized_mse", "negative_cosine", "barlow_twins", "vicreg"],
)
def test_losses_keep_float32_under_autocast(loss):
    z_a, z_b = _randn(16, 8, seed=0).float(), _randn(16, 8, seed=1).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(z_a, z_b)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(loss(z_a, z_b)), rel=1e-6)


# --- scikit-learn's checks ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@parametrize_with_checks([cls(**FAST) for cls in CLASSES])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --- each method learns -----------------------------------------------------------------


# Pretext on 1,000 unlabeled digits (10 epochs of batches of 64), probe on 300 labels,
# test on 797 others. Gains over the same network's random-init features seen for
# seeds 0, 1, 2 when the margins were set (2 CPU threads; 1 thread moves them by ~0.01):
#   MoCo +0.197, +0.203, +0.103;  BYOL +0.112, +0.142, +0.083;  SimSiam +0.099, +0.141, +0.045;
#   Barlow Twins +0.178, +0.149, +0.078;  VICReg +0.166, +0.202, +0.102.
# The trained features' median per-dimension standard deviation was 0.24-0.47 (random
# init: 0.013); last-epoch loss over first: 0.86-0.87 for MoCo and VICReg, lower for the rest.
@pytest.mark.parametrize(
    "cls, margin",
    [
        (MoCoFeaturizer, 0.05),
        (BYOLFeaturizer, 0.04),
        (SimSiamFeaturizer, 0.02),
        (BarlowTwinsFeaturizer, 0.04),
        (VICRegFeaturizer, 0.05),
    ],
    ids=["moco", "byol", "simsiam", "barlow_twins", "vicreg"],
)
def test_features_beat_random_features_on_digits(cls, margin):
    X, y = load_digits(return_X_y=True)
    featurizer = cls(max_epochs=10, batch_size=64, device="cpu", random_state=0).fit(X[:1000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])  # same init
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0]), losses
    spread = featurizer.transform(X[1000:]).std(axis=0)
    assert np.median(spread) > 0.1, spread  # no collapse to a constant embedding
    accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
    baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- momentum encoders, the queue and their fitted state ----------------------------------

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


def test_ema_update_moves_parameters_not_buffers():
    target, online = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    torch.nn.init.constant_(online.weight, 3.0)
    online.running_mean.fill_(5.0)
    ema_update(target, online, momentum=0.75)
    torch.testing.assert_close(target.weight, torch.full((3,), 1.5))  # 0.75 * 1 + 0.25 * 3
    torch.testing.assert_close(target.running_mean, torch.zeros(3))


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
    uninterrupted = cls(**kwargs).fit(X_SMALL)
    task_class = type(uninterrupted.task_)
    after_step, calls = task_class.after_step, []

    def interrupting_after_step(self, progress):
        calls.append(progress)
        if len(calls) == 8:
            raise KeyboardInterrupt
        after_step(self, progress)

    monkeypatch.setattr(task_class, "after_step", interrupting_after_step)
    with pytest.warns(UserWarning, match="interrupted"):
        cls(**kwargs, checkpoint_dir=tmp_path).fit(X_SMALL)
    monkeypatch.setattr(task_class, "after_step", after_step)
    resumed = cls(**kwargs, checkpoint_dir=tmp_path, warm_start=True).fit(X_SMALL)
    expected = uninterrupted.task_.state_dict()
    for name, value in resumed.task_.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
