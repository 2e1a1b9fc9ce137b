"""Mixed precision and compilation: the options of the GPU path, checked on the CPU."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skssl import RotNetFeaturizer, SimCLRFeaturizer
from skssl._training import autocast, uses_bfloat16

X_DIGITS = load_digits().data[:512]
TINY = dict(max_epochs=3, batch_size=64, device="cpu", random_state=0)


@pytest.mark.parametrize(
    "device, precision, enabled",
    [("cpu", "auto", False), ("cpu", "float32", False), ("cpu", "bfloat16", True),
     ("cuda", "auto", True), ("cuda", "float32", False), ("cuda", "bfloat16", True)],
)
def test_auto_precision_is_bfloat16_on_cuda_only(device, precision, enabled):
    assert uses_bfloat16(device, precision) == enabled
    if device == "cpu" or torch.cuda.is_available():
        assert torch.is_autocast_enabled(device) is False
        with autocast(torch.device(device), precision):
            assert torch.is_autocast_enabled(device) == enabled


def test_auto_precision_on_the_cpu_is_float32():
    auto = RotNetFeaturizer(**TINY).fit(X_DIGITS)
    float32 = RotNetFeaturizer(**TINY, precision="float32").fit(X_DIGITS)
    assert [h["loss"] for h in auto.history_] == [h["loss"] for h in float32.history_]
    np.testing.assert_array_equal(auto.transform(X_DIGITS), float32.transform(X_DIGITS))


@pytest.mark.parametrize("cls", [RotNetFeaturizer, SimCLRFeaturizer])
def test_bfloat16_trains_reproducibly_and_embeds_in_float32(cls):
    first = cls(**TINY, precision="bfloat16").fit(X_DIGITS)
    again = cls(**TINY, precision="bfloat16").fit(X_DIGITS)
    float32 = cls(**TINY).fit(X_DIGITS)
    losses = [h["loss"] for h in first.history_]
    assert losses[-1] < losses[0]
    assert losses == [h["loss"] for h in again.history_]
    assert losses != [h["loss"] for h in float32.history_]  # autocast did act
    np.testing.assert_allclose(losses, [h["loss"] for h in float32.history_], rtol=0.05)
    features = first.transform(X_DIGITS)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, again.transform(X_DIGITS))


def test_bfloat16_embedding_is_close_to_float32():
    random_init = RotNetFeaturizer(**{**TINY, "max_epochs": 0}).fit(X_DIGITS)
    exact = random_init.transform(X_DIGITS)
    rounded = random_init.set_params(precision="bfloat16").transform(X_DIGITS)
    assert not np.array_equal(exact, rounded)
    assert np.abs(rounded - exact).max() < 0.05 * np.abs(exact).max()


@pytest.mark.slow  # compiling takes ~10 s on a CPU
def test_compiled_training_matches_eager_and_pickles():
    eager = RotNetFeaturizer(**TINY).fit(X_DIGITS)
    compiled = RotNetFeaturizer(**TINY, compile=True).fit(X_DIGITS)
    np.testing.assert_allclose(
        [h["loss"] for h in compiled.history_], [h["loss"] for h in eager.history_], rtol=1e-3
    )
    restored = pickle.loads(pickle.dumps(compiled))  # the compiled wrapper is not part of the model
    np.testing.assert_array_equal(restored.transform(X_DIGITS), compiled.transform(X_DIGITS))
