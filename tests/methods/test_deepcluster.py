"""DeepCluster: the class-balanced loss, the k-means pipeline, the head re-initialisation
and cluster balancing, pseudo-labels in saved files and warm starts, image sizes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from skssl import load
from skssl.methods import deepcluster
from skssl.methods.deepcluster import DeepClusterFeaturizer, DeepClusterTask, kmeans_labels, pca_whiten

from _testing import FAST

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)


X_SMALL = X_DIGITS[:96]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _deepcluster_task(**kwargs):
    return DeepClusterFeaturizer(**{**FAST, "max_epochs": 0, **kwargs}).fit(X_SMALL).task_


def test_deepcluster_loss_weights_every_cluster_equally():
    """The class-weighted loss over the whole set is the mean over clusters of their mean
    loss: the gradient of sampling uniformly over the clusters, as [Caron 2018] does."""
    task = _deepcluster_task(n_clusters=5, backbone="small_cnn")  # its clusters on X_SMALL are unequal
    images = torch.as_tensor(X_SMALL).view(-1, 1, 8, 8)
    labels = task.start_epoch(images, (0.0, 16.0), torch.Generator().manual_seed(0))
    counts = torch.bincount(labels, minlength=5)
    assert counts.min() > 0 and counts.max() > 2 * counts.min()  # k-means clusters are unequal
    torch.testing.assert_close(task.cluster_weights, 96 / (5 * counts.float()))
    task.eval()
    batch = images.float() / 16.0
    with torch.no_grad():
        loss = float(task.loss(batch, labels))
        per_image = F.cross_entropy(task.head(task.features(batch)), labels, reduction="none")
    cluster_means = [float(per_image[labels == c].mean()) for c in range(5)]
    assert loss == pytest.approx(sum(cluster_means) / 5, rel=1e-5)


# --- the k-means pipeline and the head ---------------------------------------------------


def test_pca_whiten_matches_sklearn_pca_then_l2_normalisation():
    x = _randn(50, 6, seed=0) @ _randn(6, 6, seed=1)  # correlated features
    codes = pca_whiten(x.float(), 4)
    reference = PCA(n_components=4, whiten=True).fit_transform(x.numpy())
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(codes.numpy()), np.abs(reference), atol=1e-4)  # up to signs
    assert pca_whiten(torch.ones(5, 3), 2).abs().max() == 0  # constant features: zeros, not NaN
    assert pca_whiten(x.float(), 99).shape == (50, 6)  # capped at the feature size


@pytest.mark.parametrize("minibatch", [False, True], ids=["kmeans", "minibatch_kmeans"])
def test_kmeans_on_whitened_features_finds_planted_clusters(minibatch, monkeypatch):
    if minibatch:
        monkeypatch.setattr(deepcluster, "MINIBATCH_ABOVE", 10)
    centres = 10 * _randn(3, 8, seed=0)
    truth = torch.arange(90) % 3
    features = centres[truth] + _randn(90, 8, seed=1)
    labels = kmeans_labels(pca_whiten(features.float(), 4).numpy(), 3, seed=0)
    assert adjusted_rand_score(truth.numpy(), labels) == 1.0


def test_start_epoch_clusters_the_eval_features_of_the_whole_set():
    task = _deepcluster_task().train()
    images = torch.as_tensor(X_SMALL).view(-1, 1, 8, 8)
    labels = task.start_epoch(images, (0.0, 16.0), torch.Generator().manual_seed(3))
    assert task.training  # the training mode is restored
    task.eval()
    with torch.no_grad():
        codes = pca_whiten(task.features(images.float() / 16.0), task.pca_dim).numpy()
    seed = int(torch.randint(2**31 - 1, (1,), generator=torch.Generator().manual_seed(3)))
    np.testing.assert_array_equal(labels.numpy(), kmeans_labels(codes, 96, seed))  # 100 > 96 images
    assert torch.equal(task.pseudo_labels, labels)


def test_head_is_redrawn_at_every_clustering_and_kept_in_between():
    task = _deepcluster_task(reassign=2)
    images, generator = torch.as_tensor(X_SMALL).view(-1, 1, 8, 8), torch.Generator().manual_seed(0)
    draws = []
    for _ in range(4):
        with torch.no_grad():
            task.head.weight.fill_(1.0)  # stands for what the epoch's training taught it
        labels = task.start_epoch(images, (0.0, 16.0), generator)
        draws.append((task.head.weight.clone(), labels))
    for epoch in (0, 2):  # a clustering: a fresh N(0, 0.01) head with zero bias
        weight = draws[epoch][0]
        assert 0.008 < float(weight.std()) < 0.012 and not torch.any(task.head.bias)
    for epoch in (1, 3):  # the same round: the trained head and the labels stay
        assert torch.all(draws[epoch][0] == 1.0)
        assert torch.equal(draws[epoch][1], draws[epoch - 1][1])
    assert not torch.equal(draws[0][0], draws[2][0])


def test_more_clusters_than_images_gives_each_image_its_own():
    featurizer = DeepClusterFeaturizer(**FAST, n_clusters=100).fit(X_DIGITS[:10])
    task = featurizer.task_
    assert sorted(task.pseudo_labels.tolist()) == list(range(10))
    assert int((task.cluster_weights > 0).sum()) == 10 and task.head.out_features == 100
    assert np.isfinite(featurizer.history_[-1]["loss"])


def test_pseudo_labels_are_saved_with_the_weights(tmp_path):
    featurizer = DeepClusterFeaturizer(**FAST).fit(X_SMALL)
    featurizer.save(tmp_path / "deepcluster.pt")
    restored = load(tmp_path / "deepcluster.pt")
    assert torch.equal(restored.task_.pseudo_labels, featurizer.task_.pseudo_labels)
    np.testing.assert_array_equal(restored.transform(X_SMALL), featurizer.transform(X_SMALL))


def test_warm_start_on_new_images_clusters_them_afresh(monkeypatch):
    featurizer = DeepClusterFeaturizer(**FAST, reassign=3).fit(X_SMALL)  # mid-round after 2 epochs
    calls = []
    cluster = DeepClusterTask.cluster

    def counting_cluster(self, images, value_range, generator):
        calls.append(len(images))
        return cluster(self, images, value_range, generator)

    monkeypatch.setattr(DeepClusterTask, "cluster", counting_cluster)
    featurizer.set_params(warm_start=True, max_epochs=1).fit(X_DIGITS[96:192])
    assert calls == [96]


# --- image sizes --------------------------------------------------------------------------
