"""DINO and SwAV: losses and Sinkhorn-Knopp against slow references, scikit-learn's
checks, evidence that each learns, and their fitted state (teacher, centre, prototypes,
queue) through checkpoints and saved files."""

import copy
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

from skssl import load
from skssl.datasets import make_shapes
from skssl.evaluation import linear_probe
from skssl.losses import dino_loss, sinkhorn_knopp, swav_loss
from skssl.methods import swav as swav_module
from skssl.methods._siamese import TwoViewTask
from skssl.methods.dino import DINOFeaturizer, DINOTask
from skssl.methods.swav import SwAVFeaturizer, SwAVTask

FAST = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
CLASSES = [DINOFeaturizer, SwAVFeaturizer]
X_SMALL = load_digits().data[:96]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _softmax(row, temperature):
    exps = [math.exp(float(x) / temperature) for x in row]
    return [e / sum(exps) for e in exps]


def _cross_entropy(target, probabilities):
    return -sum(float(q) * math.log(p) for q, p in zip(target, probabilities))


# --- each loss against a slow, obvious reference ----------------------------------------


def dino_loss_reference(student, teacher, center, student_temperature, teacher_temperature):
    """DINO's Algorithm 1, one image and one pair of views at a time."""
    total, pairs = 0.0, 0
    for t, teacher_view in enumerate(teacher):
        for s, student_view in enumerate(student):
            if s == t:
                continue  # a view is never its own target
            for t_row, s_row in zip(teacher_view, student_view):
                q = _softmax([float(x) - float(c) for x, c in zip(t_row, center)], teacher_temperature)
                total += _cross_entropy(q, _softmax(s_row, student_temperature)) / len(teacher_view)
            pairs += 1
    return total / pairs


def sinkhorn_reference(scores, epsilon, n_iterations):
    """SwAV's Algorithm 1 in its (K, B) layout, with lists."""
    n_samples, n_prototypes = len(scores), len(scores[0])
    q = [[math.exp(float(scores[b][k]) / epsilon) for b in range(n_samples)] for k in range(n_prototypes)]
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(n_iterations):
        q = [[v / sum(row) / n_prototypes for v in row] for row in q]  # rows: 1 / K each
        columns = [sum(q[k][b] for k in range(n_prototypes)) for b in range(n_samples)]
        q = [[q[k][b] / columns[b] / n_samples for b in range(n_samples)] for k in range(n_prototypes)]
    return [[q[k][b] * n_samples for k in range(n_prototypes)] for b in range(n_samples)]  # (B, K)


def swav_loss_reference(scores, codes, temperature):
    """SwAV's swapped prediction: every view predicts every other global view's codes."""
    total, pairs = 0.0, 0
    for t, code_view in enumerate(codes):
        for s, score_view in enumerate(scores):
            if s == t:
                continue
            for code, row in zip(code_view, score_view):
                total += _cross_entropy(code, _softmax(row, temperature)) / len(code_view)
            pairs += 1
    return total / pairs


@pytest.mark.parametrize("n_student_views", [2, 4])
@pytest.mark.parametrize("temperatures", [(0.1, 0.04), (0.5, 0.07)])
def test_dino_loss_matches_reference_and_stops_the_teacher_gradient(n_student_views, temperatures):
    student = _randn(n_student_views, 5, 6, seed=0).requires_grad_(True)
    teacher = _randn(2, 5, 6, seed=1).requires_grad_(True)
    center = 0.3 * _randn(6, seed=2)
    value = dino_loss(student, teacher, center, *temperatures)
    expected = dino_loss_reference(student.detach(), teacher.detach(), center, *temperatures)
    assert float(value.detach()) == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert student.grad is not None and teacher.grad is None


@pytest.mark.parametrize("epsilon, n_iterations", [(0.05, 3), (0.5, 1), (0.1, 10)])
def test_sinkhorn_knopp_matches_reference(epsilon, n_iterations):
    scores = torch.nn.functional.normalize(_randn(7, 5, seed=0), dim=1)  # cosines, as in SwAV
    expected = torch.tensor(sinkhorn_reference(scores, epsilon, n_iterations), dtype=torch.float32)
    torch.testing.assert_close(sinkhorn_knopp(scores, epsilon, n_iterations), expected, rtol=1e-4, atol=1e-6)


def test_sinkhorn_knopp_shares_samples_out_evenly():
    """Q / B is (approximately) doubly stochastic in the paper's sense: every sample
    gives 1 / B, every prototype gets 1 / K; a plain softmax is far from it."""
    n_samples, n_prototypes = 64, 8
    scores = torch.nn.functional.normalize(_randn(n_samples, n_prototypes, seed=0), dim=1)
    scores[:, 0] += 0.5  # every sample prefers prototype 0
    plain = torch.softmax(scores.float() / 0.05, dim=1).sum(dim=0) / n_samples  # 0.48 for prototype 0
    # largest relative deviation of a prototype's share from 1 / K: 2.9 for the softmax,
    # 0.14 after 3 iterations, 0.004 after 30 (exact in the limit)
    for n_iterations, tolerance in [(3, 0.25), (30, 0.01)]:
        q = sinkhorn_knopp(scores, epsilon=0.05, n_iterations=n_iterations) / n_samples  # (B, K)
        torch.testing.assert_close(q.sum(dim=1), torch.full((n_samples,), 1 / n_samples))
        deviation = (q.sum(dim=0) - 1 / n_prototypes).abs().max()
        assert deviation < tolerance / n_prototypes, (n_iterations, q.sum(dim=0))
    assert (plain - 1 / n_prototypes).abs().max() > 2 / n_prototypes  # the constraint matters
    assert sinkhorn_knopp(scores.requires_grad_(True)).grad_fn is None  # codes are targets


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_swav_loss_matches_reference_and_treats_codes_as_constants(temperature):
    scores = _randn(3, 5, 4, seed=0).requires_grad_(True)
    codes = sinkhorn_knopp(_randn(2 * 5, 4, seed=1)).double().view(2, 5, 4).requires_grad_(True)
    value = swav_loss(scores, codes, temperature)
    assert float(value.detach()) == pytest.approx(
        swav_loss_reference(scores.detach(), codes.detach(), temperature), rel=1e-5
    )
    value.backward()
    assert scores.grad is not None and codes.grad is None


@pytest.mark.parametrize(
    "loss",
    [
        lambda s, t: dino_loss(s, t[:2], t[0, 0]),
        lambda s, t: swav_loss(s, torch.softmax(t[:2], dim=-1)),
        lambda s, t: sinkhorn_knopp(s[0]).sum(dim=0).max(),
    ],
    ids=["dino", "swav", "sinkhorn"],
)
def test_losses_keep_float32_under_autocast(loss):
    s, t = _randn(3, 16, 8, seed=0).float(), _randn(3, 16, 8, seed=1).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(s, t)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(loss(s, t)), rel=1e-6)


# --- scikit-learn's checks ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@parametrize_with_checks([cls(**FAST) for cls in CLASSES])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --- views, image sizes and bad parameters ------------------------------------------------


def test_multi_crop_views_put_the_two_global_views_first():
    batch = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    task = DINOFeaturizer(**FAST).fit(X_SMALL).task_
    expected, _ = TwoViewTask.views(task, batch, torch.Generator().manual_seed(1))  # (2B, C, H, W)
    for n_local_crops in (0, 3):
        task = copy.deepcopy(task)
        task.n_local_crops = n_local_crops
        inputs, _ = task.views(batch, torch.Generator().manual_seed(1))
        # local crops at full size, the working size of 8x8 images: 16x16
        assert inputs.shape == (5 * (2 + n_local_crops), 1, 16, 16)
        torch.testing.assert_close(inputs[:10], expected, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "X, n_features",
    [
        (X_SMALL[:40], 64),  # 8 x 8 digits
        (np.random.default_rng(0).random((24, 28 * 28)), 64),  # MNIST-sized
        (np.repeat(make_shapes(24, image_size=16, random_state=0)[0][..., None], 3, axis=3), 64),  # colour
        (np.random.default_rng(0).random((24, 4)), 64),  # 2 x 2: the smallest square
        (np.random.default_rng(0).random((24, 5)), 64),  # 1 x 5 rows, enlarged to 4 x 20
    ],
    ids=["8x8", "28x28", "colour", "2x2", "1x5"],
)
def test_any_image_size_gives_finite_features(cls, X, n_features):
    """Crops are resized back to the input size, so no image is too small."""
    featurizer = cls(n_local_crops=2, max_epochs=1, batch_size=8, device="cpu", random_state=0)
    features = featurizer.fit_transform(X)
    assert features.shape == (len(X), n_features) and np.isfinite(features).all()


@pytest.mark.parametrize(
    "cls, params, match",
    [
        (DINOFeaturizer, dict(teacher_temperature=(0.04, 0.0)), "teacher_temperature"),
        (DINOFeaturizer, dict(teacher_temperature=(0.04,)), "teacher_temperature"),
        (DINOFeaturizer, dict(local_crop_scale=(0.5, 0.1)), "local_crop_scale"),
        (SwAVFeaturizer, dict(local_crop_scale=(0.0, 0.4)), "local_crop_scale"),
        (SwAVFeaturizer, dict(epsilon=0.0), "epsilon"),
    ],
)
def test_bad_parameters_raise_clear_errors(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**FAST, **params).fit(X_SMALL)


# --- each method learns -----------------------------------------------------------------


# Pretext on 1,000 unlabeled digits (10 epochs of batches of 64), probe on 300 labels,
# test on 797 others. Gains over the same network's random-init features seen for
# seeds 0, 1, 2 when the margins were set (1 CPU thread):
#   DINO +0.093, +0.157, +0.084;  SwAV +0.146, +0.162, +0.098.
# Trained features' median per-dimension std: 0.31-0.45 (DINO without batch norm in its
# head: 0.06, collapsing). Last-epoch loss over first: DINO 0.83-0.86 (after a rise in
# epoch 2), SwAV 0.73-0.75.
@pytest.mark.parametrize("cls, margin", [(DINOFeaturizer, 0.04), (SwAVFeaturizer, 0.05)], ids=["dino", "swav"])
def test_features_beat_random_features_on_digits(cls, margin):
    X, y = load_digits(return_X_y=True)
    featurizer = cls(max_epochs=10, batch_size=64, device="cpu", random_state=0).fit(X[:1000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])  # same init
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0]), losses
    spread = featurizer.transform(X[1000:]).std(axis=0)
    assert np.median(spread) > 0.15, spread  # no collapse to a constant embedding
    accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
    baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- fitted state: teacher, centre, prototypes, queue -----------------------------------


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
    assert task.head(torch.randn(4, 64)).abs().max() <= 1 + 1e-6  # the logits are cosines


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


def test_swav_prototypes_stay_unit_vectors_and_the_queue_fills_then_joins_sinkhorn(monkeypatch):
    sizes = []
    sinkhorn = swav_module.sinkhorn_knopp

    def recording_sinkhorn(scores, *args):
        sizes.append(scores.shape[0])
        return sinkhorn(scores, *args)

    monkeypatch.setattr(swav_module, "sinkhorn_knopp", recording_sinkhorn)
    featurizer = SwAVFeaturizer(queue_size=40, n_prototypes=10, **FAST).fit(X_SMALL)  # 6 steps of 16
    task = featurizer.task_
    assert isinstance(task, SwAVTask) and not {"queue", "prototypes"} & set(featurizer.get_params())
    torch.testing.assert_close(task.prototypes.weight.norm(dim=1), torch.ones(10))
    assert task.queue.shape == (2, 40, 128) and task.queue_count == 40
    torch.testing.assert_close(task.queue.norm(dim=2), torch.ones(2, 40))
    # one call per global view and step; 16 embeddings a step fill the 40 slots in 3 of 12 steps
    assert sizes == [16] * 2 * 3 + [40 + 16] * 2 * 9, sizes
    assert SwAVFeaturizer(**FAST).fit(X_SMALL).task_.queue.shape == (2, 0, 128)


@pytest.mark.parametrize(
    "cls, params, state", [(DINOFeaturizer, {}, "center"), (SwAVFeaturizer, dict(queue_size=40), "queue")]
)
def test_saved_file_keeps_the_fitted_state(cls, params, state, tmp_path):
    featurizer = cls(**FAST, **params).fit(X_SMALL)
    featurizer.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    torch.testing.assert_close(getattr(restored.task_, state), getattr(featurizer.task_, state))
    if cls is SwAVFeaturizer:
        assert restored.task_.queue_count == featurizer.task_.queue_count == 40
    np.testing.assert_array_equal(restored.transform(X_SMALL), featurizer.transform(X_SMALL))
