"""What every fit does first (skssl._setup): networks built from a generator of the fit's
own, so that fits in threads are reproducible and independent of each other and of the
caller's use of torch's global generator."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

from skssl import FineTunedClassifier, SupervisedClassifier
from skssl._setup import seeded
from skssl.datasets import load_digits_images
from skssl.registry import METHODS

X, Y = load_digits_images(n_samples=64)
SHORT = dict(max_epochs=1, batch_size=16, device="cpu")


def _in_threads(fits):
    """Run the callables ``fits`` at the same time, one thread each; their results."""
    results, barrier = [None] * len(fits), threading.Barrier(len(fits))

    def run(i):
        barrier.wait()  # start together, so that their weight initialisations overlap
        results[i] = fits[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fits))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("name", ["rotnet", "simclr", "jigsaw", "moco", "dino", "mae"])
def test_fits_in_threads_give_what_sequential_fits_give(name):
    cls = METHODS[name].estimator

    def fit(seed):
        return lambda: cls(**SHORT, random_state=seed).fit(X).transform(X)

    sequential = [fit(seed)() for seed in (0, 0, 1)]
    threaded = _in_threads([fit(seed) for seed in (0, 0, 1)])
    for alone, together in zip(sequential, threaded):
        np.testing.assert_array_equal(together, alone)


def test_classifiers_in_threads_give_what_sequential_fits_give():
    partial = np.where(np.arange(len(Y)) % 2 == 0, Y, -1)
    fits = [
        lambda: SupervisedClassifier(**SHORT, random_state=0).fit(X, Y).predict_proba(X),
        lambda: (
            FineTunedClassifier(
                METHODS["rotnet"].estimator(**SHORT, random_state=0), semi_supervised_epochs=1, **SHORT, random_state=0
            )
            .fit(X, partial)
            .predict_proba(X)
        ),
    ]
    sequential = [fit() for fit in fits]
    for alone, together in zip(sequential, _in_threads(fits)):
        np.testing.assert_array_equal(together, alone)


def test_a_fit_neither_reads_nor_moves_the_global_generator():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = METHODS["jigsaw"].estimator(**SHORT, random_state=0).fit(X).transform(X)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)  # another global state: the same fit
    np.testing.assert_array_equal(METHODS["jigsaw"].estimator(**SHORT, random_state=0).fit(X).transform(X), first)


def test_seeded_builds_give_the_weights_manual_seed_gives_without_the_global_generator():
    def build():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(4, 2)), torch.randn(3), torch.randint(10, ())

    state = torch.get_rng_state()
    network, draw, integer = seeded(7, build)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)
    expected_network, expected_draw, expected_integer = build()
    for got, expected in zip(network.state_dict().values(), expected_network.state_dict().values()):
        assert torch.equal(got, expected)
    assert torch.equal(draw, expected_draw) and int(integer) == int(expected_integer)


def test_a_draw_that_cannot_take_a_generator_is_refused_while_building():
    with pytest.raises(RuntimeError, match="rand_like draws from torch's global generator"):
        seeded(0, lambda: torch.rand_like(torch.zeros(2)))
