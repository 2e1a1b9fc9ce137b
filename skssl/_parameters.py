"""Estimator parameters declared once, as annotated class attributes.

scikit-learn reads an estimator's parameters from the signature of its ``__init__``,
which must store each argument unchanged. Every skssl estimator derives from
:class:`DeclaredParameters`, which turns each subclass into a keyword-only dataclass:
a class lists its parameters with their types and defaults, a subclass adds its own
and overrides inherited defaults the same way, and the generated ``__init__`` (no
``**kwargs``) is what ``get_params``, ``clone``, ``inspect.signature`` and ``help()``
see. ``eq=False`` and ``repr=False`` keep scikit-learn's identity and repr.

The ``_parameter_constraints`` of a class are merged with those of its bases, so a
class states the constraints of the parameters it adds, and only those.
"""

import dataclasses
import os
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._docstrings import fill_docstring
from .backbones import BACKBONES, CONV_BACKBONES


class DeclaredParameters:
    """Base of every skssl estimator: each subclass becomes a keyword-only dataclass.

    Examples
    --------
    >>> import inspect
    >>> from skssl import RotNetFeaturizer
    >>> inspect.signature(RotNetFeaturizer).parameters["max_epochs"]
    <Parameter "max_epochs: int = 30">
    """

    _parameter_constraints: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._parameter_constraints = {
            name: constraint
            for base in reversed(cls.__mro__)
            for name, constraint in vars(base).get("_parameter_constraints", {}).items()
        }
        dataclasses.dataclass(cls, kw_only=True, eq=False, repr=False)
        fill_docstring(cls)


class NetworkParameters(DeclaredParameters):
    """The network and the images it takes: shared by featurizers and the supervised classifier."""

    # Features read at conv3 need its width: 512 numbers on MNIST rather than the lab
    # network's 64 lift every such method's linear probe (benchmarks/RESULTS.md).
    backbone: str | type | torch.nn.Module = "wide_cnn"
    backbone_kwargs: dict | None = None
    pool: str = "auto"
    image_shape: tuple[int, ...] | None = None

    _parameter_constraints = {
        "backbone": [StrOptions(set(BACKBONES)), type, torch.nn.Module],
        "backbone_kwargs": [dict, None],
        "pool": [StrOptions({"auto", "flatten", "avg"})],
        "image_shape": [tuple, list, None],
    }

    def _resolve_pool(self):
        """``pool="auto"``: flatten for the small CNNs and the MLP, average otherwise."""
        if self.pool != "auto":
            return self.pool
        return "flatten" if self.backbone in (*CONV_BACKBONES, "mlp") else "avg"


class RuntimeParameters(DeclaredParameters):
    """Where and in what arithmetic a network runs, and what seeds it: every estimator's."""

    device: str | torch.device = "auto"
    precision: str = "auto"
    random_state: int | np.random.RandomState | None = None

    _parameter_constraints = {
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
        "random_state": ["random_state"],
    }


class TrainingParameters(DeclaredParameters):
    """How the shared loop trains: epochs, optimiser, compilation, stopping, checkpoints."""

    max_epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    compile: bool = False
    verbose: int = 0
    n_threads: int | str = "auto"
    warm_start: bool = False
    tol: float = 1e-4
    n_iter_no_change: int | None = None
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int = 1

    _parameter_constraints = {
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "compile": ["boolean"],
        "verbose": ["verbose"],
        "n_threads": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
    }

    def _loop_settings(self, **overrides):
        """The keyword arguments of :func:`skssl._training.train` that these parameters set."""
        settings = dict(
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            verbose=self.verbose,
            n_threads=self.n_threads,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            precision=self.precision,
            compile=self.compile,
        )
        return {**settings, **overrides}
