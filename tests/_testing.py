"""Settings and helpers shared by the test modules: ``from _testing import FAST``.

The rootdir ``conftest.py`` sits in ``tests/``, which pytest's default ("prepend")
import mode puts on ``sys.path`` before it imports any test module, so this module
is importable from ``tests/`` and from ``tests/methods/`` alike. Constants live
here rather than in ``conftest.py`` because parametrisations need them when the
test modules are imported.
"""

import torch
from torch import nn


def fit_settings(max_epochs, batch_size):
    """Tiny, seeded CPU training settings: enough to exercise a fit, not to learn."""
    return dict(max_epochs=max_epochs, batch_size=batch_size, device="cpu", random_state=0)


FAST = fit_settings(2, 16)  # the method tests and scikit-learn's checks
TINY = fit_settings(1, 32)  # BaseFeaturizer's behaviour; a transfer's pretext stage
ONE_EPOCH = fit_settings(1, 16)  # featurizers inside semi-supervised pipelines and workflows


class InterruptingNet(nn.Module):
    """A conv net that raises KeyboardInterrupt on its ``interrupt_at``-th training call."""

    calls = 0

    def __init__(self, interrupt_at=None):
        super().__init__()
        self.interrupt_at = interrupt_at
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))

    def forward(self, x):
        if self.training and self.interrupt_at is not None:
            InterruptingNet.calls += 1
            if InterruptingNet.calls == self.interrupt_at:
                raise KeyboardInterrupt
        return self.body(x)


def assert_same_weights(a, b):
    """Two state dicts hold the same tensors, bit for bit."""
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
