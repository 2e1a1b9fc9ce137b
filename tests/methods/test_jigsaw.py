"""Jigsaw's permutation set: far apart, every order of a 2x2 grid at most, reproducible
from the seed and saved with the model. (Its tiles are tested in test_tiles.py.)"""

import itertools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skssl import load
from skssl.methods.jigsaw import JigsawFeaturizer, maximal_hamming_permutations

from _testing import FAST

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)


def _untrained(cls, X=X_DIGITS[:64], **kwargs):
    return cls(**{**FAST, "max_epochs": 0, **kwargs}).fit(X)


def _distances(permutations):
    return [int((a != b).sum()) for a, b in itertools.combinations(permutations, 2)]


@pytest.mark.parametrize("n, minimum", [(10, 8), (64, 7), (100, 6)])
@pytest.mark.parametrize("first", [0, 12345, 362879])
def test_permutations_are_far_apart(n, minimum, first):
    permutations = maximal_hamming_permutations(n, first)
    assert permutations.shape == (n, 9)
    assert tuple(permutations[0]) == next(itertools.islice(itertools.permutations(range(9)), first, None))
    assert all(sorted(p) == list(range(9)) for p in permutations.tolist())
    distances = _distances(permutations)
    assert min(distances) == minimum  # the greedy selection of [0] alone leaves pairs at 2
    assert np.mean(distances) >= 8.07  # [0]'s average for 100 permutations: 8.08


def test_a_2x2_grid_has_all_24_permutations_at_most():
    permutations = maximal_hamming_permutations(24, 5, n_tiles=4)
    assert sorted(map(tuple, permutations.tolist())) == list(itertools.permutations(range(4)))
    assert min(_distances(maximal_hamming_permutations(4, 0, n_tiles=4))) == 4  # derangements of each other
    with pytest.raises(ValueError, match="only 24 orders"):
        maximal_hamming_permutations(25, 0, n_tiles=4)
    task = _untrained(JigsawFeaturizer).task_  # 8x8 digits, n_permutations=100
    assert task.permutations.shape == (24, 4) and task.head[-1].out_features == 24


def test_permutation_set_is_reproducible_from_the_seed_and_travels_with_the_model(tmp_path):
    X = np.random.default_rng(0).random((16, 28, 28))  # a 3x3 grid
    first = _untrained(JigsawFeaturizer, X, n_permutations=24)
    again = _untrained(JigsawFeaturizer, X, n_permutations=24)
    other = _untrained(JigsawFeaturizer, X, n_permutations=24, random_state=1)
    torch.testing.assert_close(first.task_.permutations, again.task_.permutations, rtol=0, atol=0)
    assert not torch.equal(first.task_.permutations, other.task_.permutations)
    assert min(_distances(first.task_.permutations.numpy())) == 7
    assert "permutations" in dict(first.task_.named_buffers())
    first.save(tmp_path / "jigsaw.pt")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(99)  # loading draws another set, then restores the saved one
        restored = load(tmp_path / "jigsaw.pt")
    torch.testing.assert_close(restored.task_.permutations, first.task_.permutations, rtol=0, atol=0)
    np.testing.assert_array_equal(restored.transform(X[:8]), first.transform(X[:8]))
