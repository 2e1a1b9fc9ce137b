"""Evidence that each pretext task learns: its loss falls, and its frozen features beat
the same network's random-init features on a linear probe or it solves its pretext task
on unseen images, by margins that held across seeds when they were chosen (see the
figures above each test)."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from skssl import (
    BarlowTwinsFeaturizer,
    BYOLFeaturizer,
    ColorizationFeaturizer,
    ContextEncoderFeaturizer,
    CountingFeaturizer,
    CPCFeaturizer,
    DeepClusterFeaturizer,
    DenoisingAEFeaturizer,
    DINOFeaturizer,
    ExemplarFeaturizer,
    JigsawFeaturizer,
    MAEFeaturizer,
    MoCoFeaturizer,
    RandomFeaturizer,
    RelativePositionFeaturizer,
    RotNetFeaturizer,
    SimCLRFeaturizer,
    SimSiamFeaturizer,
    SplitBrainFeaturizer,
    SwAVFeaturizer,
    VICRegFeaturizer,
)
from skssl.backbones import pool
from skssl.datasets import load_digits_images, load_sample_patches
from skssl.evaluation import linear_probe, pixel_probe
from skssl.methods.mae import masked_patch_loss, n_visible, patchify

MNIST = Path(os.environ.get("SKSSL_MNIST", Path(__file__).parents[2] / "shared" / "data" / "mnist_train.npz"))


X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)

# The margins below were set across seeds on the classic lab network, at budgets of a
# few epochs. The default backbone ("wide_cnn") gives random-init features that are
# already strong on 8x8 digits (0.87 on the split below), which such short pretext runs
# barely pass; its figures at the methods' full budgets are in benchmarks/RESULTS.md.
LAB_NETWORK = "small_cnn"


def _gain_over_random(featurizer, X_unlabeled, X_train, y_train, X_test, y_test):
    featurizer.fit(X_unlabeled)
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X_unlabeled)  # same init
    losses = [epoch["loss"] for epoch in featurizer.history_]
    accuracy = linear_probe(featurizer, X_train, y_train, X_test, y_test)
    baseline = linear_probe(untrained, X_train, y_train, X_test, y_test)
    return losses, accuracy, baseline


# Pretext on 1,000 unlabeled digits, probe on 300 labels, test on 797 others. Gains over
# random-init features seen for seeds 0, 1, 2 when the margins were set:
#   SimCLR, 15 epochs: +0.13, +0.15, +0.07;  denoising, 8 epochs: +0.13, +0.06, +0.04.
#   RotNet, 20 epochs (digits enlarged to 16x16): +0.040, +0.038, +0.015, and +0.018,
#   +0.029 for seeds 3, 4; at their native 8x8 its gains were -0.012 to +0.064.
@pytest.mark.parametrize(
    "featurizer, margin",
    [
        (SimCLRFeaturizer(backbone=LAB_NETWORK, max_epochs=15, random_state=0), 0.04),
        (DenoisingAEFeaturizer(backbone=LAB_NETWORK, max_epochs=8, random_state=0), 0.03),
        (RotNetFeaturizer(backbone=LAB_NETWORK, max_epochs=20, random_state=0), 0.01),
    ],
    ids=["simclr", "denoising", "rotnet"],
)
def test_pretext_features_beat_random_features_on_digits(featurizer, margin):
    X, y = load_digits(return_X_y=True)
    losses, accuracy, baseline = _gain_over_random(featurizer, X[:1000], X[:300], y[:300], X[1000:], y[1000:])
    assert losses[-1] < 0.9 * losses[0]
    assert accuracy > baseline + margin, (accuracy, baseline)


# Jigsaw, relative position and CPC on digits: 2x2 grids of tiles or 3 rows of patches
# of the digit enlarged to 16x16, each tile normalised on its own, the digit flipped and
# turned at random for the tile methods. Their gains over random-init features vary
# more from seed to seed than the other methods', so the test averages seeds 0, 1, 2.
# Gains (conv3, the split above) for seeds 0-9 when the margin was set
# (benchmarks/seed_gains.py); the means of seeds 0-2, 3-5 and 6-8 were all +0.012 or more:
#   jigsaw, 30 epochs:            +0.075 +0.008 +0.048 +0.045 +0.051 +0.019 +0.045 +0.004 +0.105 +0.038
#   relative position, 60 epochs: +0.073 +0.029 +0.064 -0.009 +0.046 -0.001 +0.040 +0.009 +0.095 +0.049
#   CPC, 30 epochs:               +0.119 +0.045 +0.043 +0.018 +0.043 +0.034 +0.089 +0.038 +0.107 +0.058
# Before these adaptations (3x3 grids, 8x8 features) the tile methods lost 0.004-0.237
# to random features and CPC's gains straddled zero. CPC's figures are those of the whole
# image (readout="image"); its default grid of patches gains +0.013, +0.049, -0.015 over
# its own random twin on this small network (its margin on MNIST is tested below).
@pytest.mark.parametrize(
    "cls, max_epochs",
    [(JigsawFeaturizer, 30), (RelativePositionFeaturizer, 60), (CPCFeaturizer, 30)],
    ids=["jigsaw", "relative_position", "cpc"],
)
def test_patch_features_beat_random_features_on_digits_over_seeds(cls, max_epochs):
    X, y = load_digits(return_X_y=True)
    gains = []
    for seed in (0, 1, 2):
        whole_image = {"readout": "image"} if cls is CPCFeaturizer else {}
        featurizer = cls(backbone=LAB_NETWORK, max_epochs=max_epochs, device="cpu", random_state=seed, **whole_image)
        losses, accuracy, baseline = _gain_over_random(featurizer, X[:1000], X[:300], y[:300], X[1000:], y[1000:])
        assert losses[-1] < 0.7 * losses[0], losses
        gains.append(accuracy - baseline)
    assert np.mean(gains) > 0.01 and sum(gain > 0 for gain in gains) >= 2, gains


def test_rotnet_learns_to_tell_rotations_of_unseen_digits():
    X, _ = load_digits(return_X_y=True)
    featurizer = RotNetFeaturizer(backbone=LAB_NETWORK, max_epochs=10, random_state=0).fit(X[:1000])
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < 0.2 * losses[0]
    task = featurizer.task_
    unseen = torch.as_tensor(X[1000:], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    inputs, targets = task.views(unseen, torch.Generator().manual_seed(0))
    assert inputs.shape[-2:] == (16, 16)  # enlarged to the working size
    with torch.no_grad():
        predicted = task.head(pool(task.backbone(inputs), task.pool_how)).argmax(dim=1)
    assert float((predicted == targets).float().mean()) > 0.75  # chance: 0.25


@pytest.mark.slow
@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
@pytest.mark.parametrize(
    "featurizer, margin",
    [
        (RotNetFeaturizer(backbone=LAB_NETWORK, max_epochs=5, random_state=0), 0.02),
        (SimCLRFeaturizer(backbone=LAB_NETWORK, max_epochs=10, random_state=0), 0.03),
        (DenoisingAEFeaturizer(backbone=LAB_NETWORK, max_epochs=5, random_state=0), 0.02),
    ],
    ids=["rotnet", "simclr", "denoising"],
)
def test_pretext_features_beat_random_features_on_mnist(featurizer, margin):
    """The classic lab's split: pretext on the first 10,000 training images, probe on
    the next 1,000 labeled ones, test on 2,000 held out."""
    data = np.load(MNIST)
    X, y = data["X"], data["y"]
    losses, accuracy, baseline = _gain_over_random(
        featurizer, X[:10000], X[10000:11000], y[10000:11000], X[50000:52000], y[50000:52000]
    )
    assert losses[-1] < 0.9 * losses[0]
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- MoCo, BYOL, SimSiam, Barlow Twins and VICReg ---------------------------------------


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
def test_joint_embedding_features_beat_random_features_on_digits(cls, margin):
    X, y = load_digits(return_X_y=True)
    featurizer = cls(backbone=LAB_NETWORK, max_epochs=10, batch_size=64, device="cpu", random_state=0)
    losses, spread, accuracy, baseline = _learning_run(featurizer, X, y)
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0]), losses
    assert spread > 0.1, spread  # no collapse to a constant embedding
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- DINO and SwAV ----------------------------------------------------------------------


# Pretext on 1,000 unlabeled digits (10 epochs of batches of 64), probe on 300 labels,
# test on 797 others. Gains over the same network's random-init features seen for
# seeds 0, 1, 2 when the margins were set (1 CPU thread):
#   DINO +0.093, +0.157, +0.084;  SwAV +0.146, +0.162, +0.098.
# Trained features' median per-dimension std: 0.31-0.45 (DINO without batch norm in its
# head: 0.06, collapsing). Last-epoch loss over first: DINO 0.83-0.86 (after a rise in
# epoch 2), SwAV 0.73-0.75.
@pytest.mark.parametrize("cls, margin", [(DINOFeaturizer, 0.04), (SwAVFeaturizer, 0.05)], ids=["dino", "swav"])
def test_dino_and_swav_features_beat_random_features_on_digits(cls, margin):
    X, y = load_digits(return_X_y=True)
    featurizer = cls(backbone=LAB_NETWORK, max_epochs=10, batch_size=64, device="cpu", random_state=0)
    losses, spread, accuracy, baseline = _learning_run(featurizer, X, y)
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0]), losses
    assert spread > 0.15, spread  # no collapse to a constant embedding
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- DeepCluster and CPC ----------------------------------------------------------------


# Pretext on 1,000 unlabeled digits (9 epochs = 3 clustering rounds, batches of 64), probe
# on 300 labels, test on 797 others. Gains over the same network's random-init features
# for seeds 0, 1, 2 when the margin was set: +0.153, +0.162, +0.103. The loss starts near
# log(100) = 4.6 every round and fell to 4.31-4.33 by the round's third epoch; the median
# per-dimension std of the features was 0.77-0.85 (random init: 0.013-0.019). With one
# clustering per epoch (the paper's setting) the head had too few steps to learn and the
# loss stayed at chance.
def test_deepcluster_features_beat_random_features_on_digits():
    X, y = X_DIGITS, Y_DIGITS
    featurizer = DeepClusterFeaturizer(backbone=LAB_NETWORK, max_epochs=9, device="cpu", random_state=0)
    losses, spread, accuracy, baseline = _learning_run(featurizer, X, y)
    assert losses[2] < losses[0] - 0.1 and losses[5] < losses[3] - 0.1, losses  # within rounds
    assert spread > 0.1, spread  # no collapse to a constant embedding
    assert accuracy > baseline + 0.05, (accuracy, baseline)


def _unit_batch(X, side=8):
    return torch.as_tensor(X, dtype=torch.float32).view(-1, 1, side, side) / 16.0


def _patch_accuracy(task, images, batch_size=64):
    """Top-1 accuracy of picking the right patch among the 576 of a batch of 64 digits."""
    hits, total = 0, 0
    with torch.no_grad():
        for start in range(0, len(images) - batch_size + 1, batch_size):
            for predictions, candidates, positive in task.predictions(images[start : start + batch_size]):
                hits += int(((predictions @ candidates.T).argmax(dim=1) == positive).sum())
                total += len(positive)
    return hits / total


# The network learns its pretext task on digits (enlarged to 16x16; the features'
# margin over random ones is asserted over seeds in tests/test_learning.py). Seeds 0, 1,
# 2 when the thresholds were set: last-epoch loss over first 0.65, 0.64, 0.63; top-1
# choice of the right patch among the 576 of a batch of unseen digits 0.049, 0.055,
# 0.063 (random init 0.0009-0.0039, chance 0.0017); median per-dimension std of the
# features 0.09-0.19 (random init 0.007-0.015).
def test_cpc_learns_to_predict_patches_of_unseen_digits():
    featurizer = CPCFeaturizer(backbone=LAB_NETWORK, max_epochs=10, device="cpu", random_state=0).fit(X_DIGITS[:1000])
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    unseen, _ = featurizer.task_.views(_unit_batch(X_DIGITS[1000:]), None)  # enlarged to 16x16
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X_DIGITS[:1000]).task_
    accuracy, baseline = _patch_accuracy(featurizer.task_, unseen), _patch_accuracy(untrained, unseen)
    assert accuracy > 0.015 and accuracy > 5 * baseline, (accuracy, baseline)
    spread = featurizer.transform(X_DIGITS[1000:]).std(axis=0)
    assert np.median(spread) > 0.05, spread  # no collapse to a constant embedding


# The same network on MNIST, where 8x8 patches of 28x28 digits hold parts of strokes:
# pretext on the first 3,000 training images (3 epochs), probe on the next 1,000, test on
# 2,000 held out (tests/test_learning.py's split, less pretext data: CPC runs the backbone
# on 36 patches per image). Seeds 0, 1, 2 when the margin was set, conv3: the default
# grid of patches 0.915, 0.910, 0.910, +0.030, +0.036, +0.030 over its random twin read the
# same way; the whole image (readout="image") 0.801, 0.787, 0.798, +0.093, +0.095, +0.053.
@pytest.mark.slow
@pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")
def test_cpc_features_beat_random_features_on_mnist():
    data = np.load(MNIST)
    X, y = data["X"], data["y"]
    featurizer = CPCFeaturizer(backbone=LAB_NETWORK, max_epochs=3, device="cpu", random_state=0).fit(X[:3000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:3000])
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < 0.95 * losses[0], losses
    accuracy = linear_probe(featurizer, X[10000:11000], y[10000:11000], X[50000:52000], y[50000:52000])
    baseline = linear_probe(untrained, X[10000:11000], y[10000:11000], X[50000:52000], y[50000:52000])
    assert accuracy > baseline + 0.015, (accuracy, baseline)


# --- context encoder and Exemplar -------------------------------------------------------


# Pretext on 1,000 unlabeled digits (10 epochs, default settings), probe on 300 labels,
# test on 797 others, one CPU thread. Gains over the same network's random-init features
# for seeds 0, 1, 2 when the margins were set:
#   context encoder +0.079, +0.103, +0.044 (loss 0.11 -> 0.056);
#   Exemplar +0.201, +0.206, +0.120 (loss 0.47 -> 0.42; median per-dimension std 0.39-0.42).
@pytest.mark.parametrize(
    "cls, margin, loss_drop",
    [(ContextEncoderFeaturizer, 0.02, 0.3), (ExemplarFeaturizer, 0.06, 0.05)],
    ids=["context_encoder", "exemplar"],
)
def test_context_encoder_and_exemplar_features_beat_random_features_on_digits(cls, margin, loss_drop):
    X, y = load_digits(return_X_y=True)
    featurizer = cls(backbone=LAB_NETWORK, max_epochs=10, device="cpu", random_state=0)
    losses, spread, accuracy, baseline = _learning_run(featurizer, X, y)
    assert losses[-1] < (1 - loss_drop) * losses[0], losses
    assert spread > 0.1, spread  # no collapse to a constant embedding
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- jigsaw, relative position and counting ---------------------------------------------


# Pretext on 1,000 unlabeled digits (10 epochs of batches of 64), probe on 300 labels,
# test on 797 others, as for MoCo and the others above. Counting's conv3 features gained
# +0.078, +0.069, +0.049 over the same network's random-init features for seeds 0, 1, 2
# (1 thread); median per-dimension std 0.82-0.96 (random init: 0.013-0.019); last-epoch
# loss over first 0.34-0.48.
def test_counting_features_beat_random_features_on_digits():
    X, y = X_DIGITS, Y_DIGITS
    featurizer = CountingFeaturizer(
        backbone=LAB_NETWORK, layer="conv3", max_epochs=10, batch_size=64, device="cpu", random_state=0
    )
    losses, spread, accuracy, baseline = _learning_run(featurizer, X, y)
    assert losses[-1] < 0.7 * losses[0], losses
    assert spread > 0.1, spread  # no collapse to a constant embedding
    assert accuracy > baseline + 0.025, (accuracy, baseline)


def _pretext_accuracy(task, X):
    """How often the trained head names the arrangement of tiles of unseen digits."""
    batch = torch.as_tensor(X, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    inputs, targets = task.views(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = task.head(task.encode(inputs).view(len(targets), -1))
    return float((logits.argmax(dim=1) == targets).float().mean())


# Each network learns its task on digits (their features' margin over random ones is
# asserted over seeds in tests/test_learning.py). Seeds 0, 1, 2 when the thresholds were
# set: jigsaw named the permutation (of 24, chance 0.042) of 0.556, 0.580, 0.565 of
# unseen digits' puzzles, randomly flipped and turned, its last-epoch loss 0.36-0.39 of
# its first; relative position named the direction (of 8, chance 0.125) of 0.488,
# 0.481, 0.499, its loss ratio 0.64-0.66.
@pytest.mark.parametrize(
    "cls, loss_ratio, floor",
    [(JigsawFeaturizer, 0.5, 0.45), (RelativePositionFeaturizer, 0.75, 0.35)],
    ids=["jigsaw", "relative_position"],
)
def test_patch_tasks_are_learned_on_unseen_digits(cls, loss_ratio, floor):
    featurizer = cls(backbone=LAB_NETWORK, max_epochs=10, batch_size=64, device="cpu", random_state=0).fit(
        X_DIGITS[:1000]
    )
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < loss_ratio * losses[0], losses
    assert _pretext_accuracy(featurizer.task_, X_DIGITS[1000:]) > floor


# --- colorization and split-brain --------------------------------------------------------


def _learning_run(featurizer, X, y):
    """Pretext on 1,000 images; the losses, the median per-dimension std of the features
    of the others, and the linear-probe accuracy (300 labels) of the featurizer and of
    the same network at its random initial weights."""
    featurizer.fit(X[:1000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])  # same init
    losses = [epoch["loss"] for epoch in featurizer.history_]
    spread = np.median(featurizer.transform(X[1000:]).std(axis=0))
    accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
    baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
    return losses, spread, accuracy, baseline


PATCHES = dict(patch_size=16, n_patches=2000, random_state=0)


# Pretext on 1,000 unlabeled images, probe on 300 labels, test on the others (797 digits,
# 1,000 sample patches). Gains of the last stage's features over the same network's
# random-init ones for seeds 0, 1, 2 when the margins were set (1 CPU thread):
#   Colorization on patches: +0.066, +0.103, +0.071 (probe 0.50-0.52; raw pixels: 0.42);
#   split-brain on patches: +0.086, +0.055, +0.074;  on digits: +0.055, +0.046, +0.038.
# Last-epoch loss over first: 0.66-0.67, 0.54, 0.61-0.64; median feature std: 0.39-0.82.
# Split-brain on digits needs its ~300 steps (batches of 32): with 150 steps of 64 at
# learning_rate=1e-3 the gains were -0.02 to +0.03; 30 such epochs gave +0.02 to +0.08.
@pytest.mark.parametrize(
    "make, data, margin",
    [
        (lambda: ColorizationFeaturizer(backbone=LAB_NETWORK, max_epochs=10, batch_size=64), "patches", 0.03),
        (
            lambda: SplitBrainFeaturizer(backbone=LAB_NETWORK, max_epochs=10, batch_size=32, learning_rate=2e-3),
            "patches",
            0.025,
        ),
        (
            lambda: SplitBrainFeaturizer(backbone=LAB_NETWORK, max_epochs=10, batch_size=32, learning_rate=2e-3),
            "digits",
            0.015,
        ),
    ],
    ids=["colorization-patches", "split-brain-patches", "split-brain-digits"],
)
def test_colour_features_beat_random_features(make, data, margin):
    X, y = load_sample_patches(**PATCHES) if data == "patches" else load_digits(return_X_y=True)
    featurizer = make().set_params(device="cpu", random_state=0)
    losses, spread, accuracy, baseline = _learning_run(featurizer, X, y)
    assert losses[-1] < 0.8 * losses[0], losses
    assert spread > 0.2, spread  # no collapse to a constant embedding
    assert accuracy > baseline + margin, (accuracy, baseline)


# --- MAE ------------------------------------------------------------------------------------


def held_out_losses(featurizer, X_train, X_test, seed=0):
    """The masked-patch loss on unseen images, and that of predicting every hidden patch
    by the average training image, under the same random masks."""
    task = featurizer.task_

    def to_images(X):
        return torch.as_tensor(X, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0

    inputs, shuffle = task.views(to_images(X_test), torch.Generator().manual_seed(seed))
    with torch.no_grad():
        loss = float(task.loss(inputs, shuffle))

    def standardise(images):
        return (images - task.backbone.mean) / task.backbone.std

    target = patchify(standardise(inputs), task.patch_size)
    average = patchify(standardise(to_images(X_train)), task.patch_size).mean(dim=0)  # (N, P)
    mask = torch.ones(shuffle.shape).scatter_(1, shuffle[:, : n_visible(shuffle.shape[1], task.mask_ratio)], 0.0)
    return loss, float(masked_patch_loss(average.expand_as(target), target, mask))


# MAE learns slowly on 1,000 digits (ViT-Tiny, 4 blocks; seeds 0, 1, 2, one CPU thread):
# - 20 epochs of batches of 32 (~30 s): the held-out masked-patch loss is 0.82, 0.84,
#   0.80 times that of predicting the average image (10 epochs: 0.97, 0.96, 0.94); the
#   training loss falls from 0.77-0.86 to 0.40-0.42.
# - the linear probe does not yet beat random-init features at that length (10 epochs,
#   batches of 32: -0.035, -0.018, -0.086; 30 epochs, batches of 64: -0.009, -0.035,
#   -0.022); with the defaults (100 epochs, batches of 64, ~2 min) it does: +0.048,
#   +0.051, +0.035 (0.841, 0.846, 0.854 against 0.793, 0.795, 0.819). That is the
#   slow test below; the fast one checks that the network learns to use what it sees.
def test_mae_reconstructs_unseen_digits_better_than_the_average_image():
    X, _ = load_digits(return_X_y=True)
    featurizer = MAEFeaturizer(max_epochs=20, batch_size=32, device="cpu", random_state=0).fit(X[:1000])
    losses = [epoch["loss"] for epoch in featurizer.history_]
    assert losses[-1] < 0.7 * losses[0], losses
    loss, average = held_out_losses(featurizer, X[:1000], X[1000:])
    assert loss < 0.9 * average, (loss, average)
    spread = featurizer.transform(X[1000:]).std(axis=0)
    assert np.median(spread) > 0.05, spread  # no collapse (seeds 0-2: 0.17-0.22; random init: 0.11)


# The defaults themselves (wide_cnn, 100 epochs), on the digits test split of
# benchmarks/recipes.py (pretext on the first 1,297 digits, labels of the first 1,000,
# the last 250 scored; raw pixels 0.876). Seeds 0, 1, 2 when the margins were set
# (one CPU thread, about 50 s a fit):
#   SwAV   0.952 0.944 0.948: +0.076 +0.068 +0.072 over raw, +0.108 +0.112 +0.092 over random;
#   SimCLR 0.944 0.932 0.956: +0.068 +0.056 +0.080 over raw, +0.100 +0.100 +0.100 over random.
@pytest.mark.slow
@pytest.mark.parametrize("cls", [SwAVFeaturizer, SimCLRFeaturizer], ids=["swav", "simclr"])
def test_default_features_beat_raw_pixels_and_random_features_on_digits(cls):
    X, y = load_digits_images()
    labelled, scored = (X[:1000], y[:1000]), (X[1547:], y[1547:])
    featurizer = cls(device="cpu", random_state=0).fit(X[:1297])
    random = RandomFeaturizer(layer=featurizer.layer_, random_state=0).fit(X[:1297])
    accuracy = linear_probe(featurizer, *labelled, *scored)
    assert accuracy > pixel_probe(*labelled, *scored) + 0.04, accuracy
    assert accuracy > linear_probe(random, *labelled, *scored) + 0.06, accuracy


@pytest.mark.slow
def test_mae_features_beat_random_features_on_digits():
    X, y = load_digits(return_X_y=True)
    featurizer = MAEFeaturizer(device="cpu", random_state=0).fit(X[:1000])
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])  # same init
    accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
    baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
    assert accuracy > baseline + 0.02, (accuracy, baseline)
