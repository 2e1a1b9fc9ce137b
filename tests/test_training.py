"""Training (``skssl._training``): interruption, warm starts, early stopping,
divergence, the global state a fit leaves alone; mixed precision and compilation, the
options of the GPU path, checked on the CPU."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from skssl import DenoisingAEFeaturizer, RotNetFeaturizer, SimCLRFeaturizer
from skssl._training import autocast, uses_bfloat16

from _testing import InterruptingNet, assert_same_weights, fit_settings

X = load_digits().data[:96]
TINY = fit_settings(4, 32)  # 3 steps per epoch


def _weights(featurizer):
    return featurizer.task_.state_dict()


def test_keyboard_interrupt_keeps_the_last_completed_epoch(tmp_path):
    InterruptingNet.calls = 0
    featurizer = DenoisingAEFeaturizer(
        **TINY, backbone=InterruptingNet, backbone_kwargs={"interrupt_at": 8}, checkpoint_dir=tmp_path
    )
    with pytest.warns(UserWarning, match=r"interrupted.*\(2 of 4\)"):
        featurizer.fit(X)  # step 8 is in epoch 3
    check_is_fitted(featurizer)
    assert featurizer.n_iter_ == 2 and len(featurizer.history_) == 2
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert_same_weights(_weights(featurizer), saved["task"])
    assert np.isfinite(featurizer.transform(X)).all()


def test_warm_start_trains_further():
    featurizer = RotNetFeaturizer(**{**TINY, "max_epochs": 2}).fit(X)
    first = {k: v.clone() for k, v in _weights(featurizer).items()}
    featurizer.set_params(warm_start=True, max_epochs=1).fit(X)
    assert featurizer.n_iter_ == 3
    assert [h["epoch"] for h in featurizer.history_] == [1, 2, 3]
    assert any(not torch.equal(first[k], v) for k, v in _weights(featurizer).items())


def test_early_stopping_and_convergence_warning():
    stopped = RotNetFeaturizer(**{**TINY, "max_epochs": 10}, tol=100.0, n_iter_no_change=2).fit(X)
    assert stopped.n_iter_ == 3  # epoch 1 improves on infinity, 2 and 3 do not by 100
    with pytest.warns(ConvergenceWarning, match="still improving"):
        RotNetFeaturizer(**{**TINY, "max_epochs": 2}, tol=0.0, n_iter_no_change=5).fit(X)


def test_divergence_leaves_the_featurizer_unfitted():
    featurizer = DenoisingAEFeaturizer(**{**TINY, "noise": "gaussian"}).fit(X)
    featurizer.set_params(learning_rate=1e30)
    with pytest.raises(ValueError, match="diverged and the featurizer is not fitted"):
        featurizer.fit(X)
    with pytest.raises(NotFittedError):
        featurizer.transform(X)


def test_fit_leaves_torch_global_state_alone():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    rng = torch.get_rng_state()
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}).fit(X)
    assert torch.get_default_dtype() == dtype and torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng)


# --- mixed precision and compilation -------------------------------------------------------


X_DIGITS = load_digits().data[:512]


THREE_EPOCHS = fit_settings(3, 64)


@pytest.mark.parametrize(
    "device, precision, enabled",
    [
        ("cpu", "auto", False),
        ("cpu", "float32", False),
        ("cpu", "bfloat16", True),
        ("cuda", "auto", True),
        ("cuda", "float32", False),
        ("cuda", "bfloat16", True),
    ],
)
def test_auto_precision_is_bfloat16_on_cuda_only(device, precision, enabled):
    assert uses_bfloat16(device, precision) == enabled
    if device == "cpu" or torch.cuda.is_available():
        assert torch.is_autocast_enabled(device) is False
        with autocast(torch.device(device), precision):
            assert torch.is_autocast_enabled(device) == enabled


def test_auto_precision_on_the_cpu_is_float32():
    auto = RotNetFeaturizer(**THREE_EPOCHS).fit(X_DIGITS)
    float32 = RotNetFeaturizer(**THREE_EPOCHS, precision="float32").fit(X_DIGITS)
    assert [h["loss"] for h in auto.history_] == [h["loss"] for h in float32.history_]
    np.testing.assert_array_equal(auto.transform(X_DIGITS), float32.transform(X_DIGITS))


@pytest.mark.parametrize("cls", [RotNetFeaturizer, SimCLRFeaturizer])
def test_bfloat16_trains_reproducibly_and_embeds_in_float32(cls):
    first = cls(**THREE_EPOCHS, precision="bfloat16").fit(X_DIGITS)
    again = cls(**THREE_EPOCHS, precision="bfloat16").fit(X_DIGITS)
    float32 = cls(**THREE_EPOCHS).fit(X_DIGITS)
    losses = [h["loss"] for h in first.history_]
    assert losses[-1] < losses[0]
    assert losses == [h["loss"] for h in again.history_]
    assert losses != [h["loss"] for h in float32.history_]  # autocast did act
    np.testing.assert_allclose(losses, [h["loss"] for h in float32.history_], rtol=0.05)
    features = first.transform(X_DIGITS)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, again.transform(X_DIGITS))


def test_bfloat16_embedding_is_close_to_float32():
    random_init = RotNetFeaturizer(**{**THREE_EPOCHS, "max_epochs": 0}).fit(X_DIGITS)
    exact = random_init.transform(X_DIGITS)
    rounded = random_init.set_params(precision="bfloat16").transform(X_DIGITS)
    assert not np.array_equal(exact, rounded)
    assert np.abs(rounded - exact).max() < 0.05 * np.abs(exact).max()


@pytest.mark.slow  # compiling takes ~10 s on a CPU
def test_compiled_training_matches_eager_and_pickles():
    eager = RotNetFeaturizer(**THREE_EPOCHS).fit(X_DIGITS)
    compiled = RotNetFeaturizer(**THREE_EPOCHS, compile=True).fit(X_DIGITS)
    np.testing.assert_allclose([h["loss"] for h in compiled.history_], [h["loss"] for h in eager.history_], rtol=1e-3)
    restored = pickle.loads(pickle.dumps(compiled))  # the compiled wrapper is not part of the model
    np.testing.assert_array_equal(restored.transform(X_DIGITS), compiled.transform(X_DIGITS))


def test_a_run_resumed_for_longer_decays_to_zero_at_its_new_end():
    """The saved cosine schedule knows the old length; resumed for more steps, the
    learning rate keeps falling to zero instead of climbing back after the old end."""
    from skssl._training import Run
    from skssl.task import PretextTask

    class Linear(PretextTask):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Linear(2, 1)

        def views(self, batch, generator, targets=None):
            return batch, targets

        def loss(self, inputs, targets):
            return self.backbone(inputs).square().mean()

    def steps(run, n):
        rates = []
        for _ in range(n):
            run.step(run.task.loss(torch.ones(4, 2), None))
            rates.append(run.optimizer.param_groups[0]["lr"])
        return rates

    task, cpu = Linear(), torch.device("cpu")
    first = Run(task, 1e-2, 0.0, 10, cpu, torch.Generator())
    steps(first, 10)
    first.last_good = {k: v.clone() for k, v in task.state_dict().items()}
    longer = Run(task, 1e-2, 0.0, 20, cpu, torch.Generator())
    longer.resume(first.state())
    rates = steps(longer, 10)
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:])) and rates[-1] < 1e-12
