"""The losses of ``skssl.losses`` against slow, obvious references: their values, the
gradients they must stop, float32 under autocast. (CPC's and counting's losses are
checked in methods/test_cpc.py and methods/test_counting.py, beside the tasks whose
tests share their references.)"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skssl.losses import (
    barlow_twins_loss,
    dino_loss,
    info_nce,
    negative_cosine,
    normalized_mse,
    nt_xent,
    rebalanced_cross_entropy,
    sinkhorn_knopp,
    swav_loss,
    triplet_loss,
    vicreg_loss,
)

# --- NT-Xent (SimCLR) -------------------------------------------------------------------


def nt_xent_reference(z_a, z_b, temperature):
    """NT-Xent written as in the SimCLR paper's Algorithm 1, one pair at a time."""
    z = [F.normalize(v, dim=0) for v in torch.cat([z_a, z_b])]
    n = len(z_a)

    def pair_loss(i, j):
        others = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * n) if k != i)
        return -math.log(math.exp(float(z[i] @ z[j]) / temperature) / others)

    return sum(pair_loss(k, k + n) + pair_loss(k + n, k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_reference(temperature):
    generator = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(2, 6, 5, generator=generator)
    assert float(nt_xent(z_a, z_b, temperature)) == pytest.approx(nt_xent_reference(z_a, z_b, temperature), rel=1e-5)


# --- MoCo, BYOL, SimSiam, Barlow Twins and VICReg ---------------------------------------


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _unit(v):
    v = [float(x) for x in v]
    return [x / math.sqrt(sum(x**2 for x in v)) for x in v]


def _dot(u, v):
    return sum(float(a) * float(b) for a, b in zip(u, v))


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


@pytest.mark.parametrize("coefficients", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
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


# --- DINO and SwAV ----------------------------------------------------------------------


def _softmax(row, temperature):
    exps = [math.exp(float(x) / temperature) for x in row]
    return [e / sum(exps) for e in exps]


def _cross_entropy(target, probabilities):
    return -sum(float(q) * math.log(p) for q, p in zip(target, probabilities))


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
def test_multi_crop_losses_keep_float32_under_autocast(loss):
    s, t = _randn(3, 16, 8, seed=0).float(), _randn(3, 16, 8, seed=1).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(s, t)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(loss(s, t)), rel=1e-6)


# --- Exemplar's triplet loss ------------------------------------------------------------


def triplet_reference(embeddings, labels, margin, mining):
    """Triplets written out one anchor at a time, on squared distances of unit vectors."""
    z = [[float(v) / math.sqrt(sum(float(u) ** 2 for u in row)) for v in row] for row in embeddings]
    labels = [int(label) for label in labels]

    def distance(i, j):
        return sum((a - b) ** 2 for a, b in zip(z[i], z[j]))

    losses = []
    for a in range(len(z)):
        positives = [p for p in range(len(z)) if p != a and labels[p] == labels[a]]
        negatives = [distance(a, n) for n in range(len(z)) if labels[n] != labels[a]]
        if not positives or not negatives:
            continue
        if mining == "batch_hard":
            hardest = max(distance(a, p) for p in positives)
            losses.append(max(0.0, hardest - min(negatives) + margin))
        else:
            for p in positives:
                farther = [d for d in negatives if d > distance(a, p)]
                negative = min(farther) if farther else max(negatives)
                losses.append(max(0.0, distance(a, p) - negative + margin))
    return sum(losses) / max(len(losses), 1)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_triplet_loss_matches_reference(mining, margin, seed):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(14, 5, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5, 5])  # 4 is alone: no positive
    expected = triplet_reference(embeddings, labels, margin, mining)
    assert float(triplet_loss(embeddings, labels, margin, mining)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_triplet_loss_gradients_are_finite_without_negatives_or_positives(mining):
    for labels in (torch.zeros(4, dtype=torch.long), torch.arange(4)):
        embeddings = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
        loss = triplet_loss(embeddings, labels, 0.5, mining)
        loss.backward()
        assert float(loss.detach()) == 0.0 and torch.all(embeddings.grad == 0)
    embeddings = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    triplet_loss(embeddings, torch.arange(4).repeat(2), 0.5, mining).backward()
    assert torch.isfinite(embeddings.grad).all() and embeddings.grad.abs().sum() > 0


def test_triplet_loss_keeps_float32_under_autocast_and_rejects_unknown_mining():
    z, labels = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), torch.arange(4).repeat(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = triplet_loss(z, labels)
    assert value.dtype == torch.float32 and float(value) == pytest.approx(float(triplet_loss(z, labels)))
    with pytest.raises(ValueError, match="mining"):
        triplet_loss(z, labels, mining="hard")


# --- colorization's class-rebalanced cross-entropy ---------------------------------------


def test_rebalanced_cross_entropy_matches_reference():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 3, 2, generator=generator)
    targets = torch.softmax(3 * torch.randn(2, 5, 3, 2, generator=generator), dim=1)
    class_weights = torch.rand(5, generator=generator) + 0.5
    total = 0.0
    for n, i, j in np.ndindex(2, 3, 2):
        scores = logits[n, :, i, j].tolist()
        log_normaliser = math.log(sum(math.exp(s) for s in scores))
        target = targets[n, :, i, j].tolist()
        weight = class_weights.tolist()[max(range(5), key=lambda q: target[q])]
        total += -weight * sum(t * (s - log_normaliser) for t, s in zip(target, scores))
    value = rebalanced_cross_entropy(logits, targets, class_weights)
    assert float(value) == pytest.approx(total / 12, rel=1e-5)  # the mean over 2 x 3 x 2 positions
    plain = torch.nn.functional.cross_entropy(logits, targets)
    assert float(rebalanced_cross_entropy(logits, targets)) == pytest.approx(float(plain), rel=1e-5)
