"""The method contract (skssl.task): the hooks the loop calls, in order; the targets
they hand over; the build context a method sees; and a method of one's own, written
to the contract, working as a scikit-learn estimator."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import check_estimator
from torch import nn

from skssl import load
from skssl.backbones import pool
from skssl.base import BaseFeaturizer
from skssl.registry import METHODS, register_method, unregister_method
from skssl.task import BuildContext, PretextTask

X = load_digits().data[:64]


class ParityTask(PretextTask):
    """Predict a per-image target fixed for the run (the parity of the image's index),
    recording every hook the loop calls."""

    def __init__(self, backbone, pool_how):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.head = nn.Linear(backbone.pooled_size(pool_how), 2)
        self.calls = []

    def start_training(self, images, value_range, generator):
        self.calls.append("start_training")
        return torch.arange(len(images), device=self.head.weight.device) % 2

    def start_epoch(self, images, value_range, generator):
        self.calls.append("start_epoch")

    def views(self, batch, generator, targets=None):
        assert targets is not None and len(targets) == len(batch)
        return batch, targets

    def loss(self, inputs, targets):
        return F.cross_entropy(self.head(pool(self.backbone(inputs), self.pool_how)), targets)

    def after_step(self, progress):
        self.calls.append("after_step")


class ParityFeaturizer(BaseFeaturizer):
    """Features that tell an image's index parity (a test method).

    Parameters
    ----------
    hidden : int, default=8
        Unused: shows that a method's own parameter is declared once, here.
    %(common_parameters)s
    """

    hidden: int = 8
    max_epochs: int = 2
    batch_size: int = 16

    _parameter_constraints = {"hidden": [int]}

    def _build_task(self, backbone, context):
        task = ParityTask(backbone, context.pool)
        task.context = context  # a plain attribute: the test reads what the builder saw
        return task


def test_the_loop_calls_the_hooks_in_order_and_hands_run_targets_to_views():
    featurizer = ParityFeaturizer(device="cpu", random_state=0).fit(X)
    steps_per_epoch = len(X) // 16
    epoch = ["start_epoch"] + ["after_step"] * steps_per_epoch
    assert featurizer.task_.calls == ["start_training"] + epoch * 2
    assert featurizer.history_[-1]["loss"] < featurizer.history_[0]["loss"] + 1.0  # it trained on them


def test_the_builder_sees_the_data_and_a_rebuilt_task_sees_none():
    featurizer = ParityFeaturizer(device="cpu", random_state=0).fit(X)
    context = featurizer.task_.context
    assert isinstance(context, BuildContext)
    assert context.n_images == 64 and context.image_shape == (1, 8, 8) == context.working_shape
    assert context.value_range == featurizer.value_range_ and context.pool == "flatten"
    unit = X / X.max()
    np.testing.assert_allclose(context.mean, [unit.mean()], rtol=1e-5)
    np.testing.assert_allclose(context.std, [unit.std()], rtol=1e-4)
    rebuilt = featurizer.untrained_task().context
    assert rebuilt.n_images is None and rebuilt.images is None and rebuilt.mean == [0.0]


def test_a_method_of_ones_own_is_a_full_estimator(tmp_path):
    register_method("parity", task="tell the parity of the index", paper="test suite")(ParityFeaturizer)
    try:
        assert METHODS["parity"].estimator is ParityFeaturizer
        assert METHODS["parity"].default_epochs == 2
        featurizer = ParityFeaturizer(hidden=3, device="cpu", random_state=0)
        assert clone(featurizer).get_params()["hidden"] == 3
        assert "hidden : int, default=8" in ParityFeaturizer.__doc__
        assert "backbone_kwargs : dict" in ParityFeaturizer.__doc__  # the shared section, filled in
        featurizer.fit(X).save(tmp_path / "parity.pt")
        np.testing.assert_array_equal(load(tmp_path / "parity.pt").transform(X), featurizer.transform(X))
    finally:
        unregister_method("parity")
    assert "parity" not in METHODS


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.filterwarnings("ignore:batch_size=.* is larger than")
def test_a_method_of_ones_own_passes_scikit_learns_checks():
    check_estimator(ParityFeaturizer(max_epochs=1, device="cpu", random_state=0))


def test_the_base_forward_hands_the_loops_targets_to_views():
    class Echo(PretextTask):
        def views(self, batch, generator, targets=None):
            return batch, targets

        def loss(self, inputs, targets):
            return (inputs.sum() - targets.sum()) * 0 + targets.float().mean()

    targets = torch.tensor([1.0, 3.0])
    assert float(Echo()(torch.zeros(2, 1, 2, 2), None, targets)) == 2.0


def test_the_loops_targets_override_those_start_training_gives(monkeypatch):
    """Labels handed to ``train`` (a classifier's) reach ``views`` unless a hook gives
    its own; a per-epoch target beats a per-run one."""
    from skssl._training import train

    class Recorder(ParityTask):
        def start_epoch(self, images, value_range, generator):
            return torch.full((len(images),), 1)

        def views(self, batch, generator, targets=None):
            self.seen = targets
            return batch, targets

    featurizer = ParityFeaturizer(device="cpu", random_state=0).fit(X)
    task = Recorder(featurizer.untrained_task().backbone, "flatten")
    images = torch.as_tensor(X.reshape(-1, 1, 8, 8), dtype=torch.float32)
    train(
        task,
        images,
        value_range=(0.0, 16.0),
        batch_size=16,
        max_epochs=1,
        learning_rate=1e-3,
        weight_decay=0.0,
        generator=torch.Generator().manual_seed(0),
        targets=torch.zeros(64, dtype=torch.long),
    )
    assert torch.equal(task.seen, torch.ones(16, dtype=torch.long))


def test_no_registered_method_reaches_past_the_contract():
    """Methods fill ``_build_task`` (and ``_auto_layer``, ``_make_backbone``); none
    overrides ``fit``, the task construction or ``__init__`` by hand."""
    for method in METHODS.values():
        cls = method.estimator
        assert cls.fit is BaseFeaturizer.fit, method.name
        for name in ("_initial_task", "_make_task", "_trainable_task", "untrained_task"):
            assert getattr(cls, name) is getattr(BaseFeaturizer, name), (method.name, name)
        assert "_store_parameters" not in vars(cls)
