"""Fixtures shared by the test modules.

Settings (``FAST``, ``TINY``, ...) and helpers that parametrisations need at import
time are in ``_testing.py``. The layout: ``tests/test_<module>.py`` for the modules
of ``skssl``, ``tests/methods/test_<module>.py`` for those of ``skssl.methods``, and
a few topic files that go through several modules (``test_common.py``,
``test_learning.py``, ``test_workflows.py``, ``test_scale.py``, ...). Basenames are
unique: the test folders have no ``__init__.py``.
"""

import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="module")
def digits():
    """All 1,797 8x8 digits as ``(X, y)``, loaded once per test module.

    A module that works on a subset overrides this fixture with one of the same
    name that requests it and returns its slice.
    """
    return load_digits(return_X_y=True)


@pytest.fixture(autouse=True)
def _fixed_threads():
    """Fits keep the threads they start with (``n_threads="auto"`` does not follow the
    load), so that bit-identity checks do not depend on what else the machine runs;
    tests/test_threads.py turns it back on. Not through ``monkeypatch``, whose
    ``undo()`` in a test would turn it on again."""
    from skssl import _threads

    _threads.ADAPT = False
    yield
    _threads.ADAPT = True
