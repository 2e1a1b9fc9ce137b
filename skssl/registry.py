"""The methods skssl knows: one entry per featurizer, by a short name.

The registry feeds the README's table of methods, the tests' lists of estimators and
the command line's ``--methods``. A method registers itself with
:func:`register_method` above its class; a method of your own registers the same way
and is then found by name like the built-in ones.

Examples
--------
>>> from skssl.registry import METHODS
>>> METHODS["rotnet"].estimator.__name__, METHODS["rotnet"].paper
('RotNetFeaturizer', 'Gidaris et al., ICLR 2018')
>>> METHODS["rotnet"].default_backbone, METHODS["rotnet"].default_layer, METHODS["rotnet"].default_epochs
('wide_cnn', 'conv2', 30)
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from .backbones import build_stages
from .base import BaseFeaturizer

_METHODS = {}

#: Every registered method by name, in registration order (read-only).
METHODS = MappingProxyType(_METHODS)


@dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes
    ----------
    name : str
        The short name, as the command line takes it (``"simclr"``).
    estimator : type
        The featurizer class, a subclass of :class:`skssl.base.BaseFeaturizer`.
    task : str
        The pretext task in a few words.
    paper : str
        Where it comes from (``"Chen et al., ICML 2020"``).
    """

    name: str
    estimator: type
    task: str
    paper: str

    @property
    def default_epochs(self):
        """``max_epochs`` at the estimator's defaults."""
        return inspect.signature(self.estimator).parameters["max_epochs"].default

    @property
    def default_backbone(self):
        """``backbone`` at the estimator's defaults."""
        return inspect.signature(self.estimator).parameters["backbone"].default

    @property
    def default_layer(self):
        """The stage ``layer="auto"`` gives on the estimator's default backbone."""
        estimator = self.estimator()
        stages = build_stages(estimator.backbone, (1, 32, 32), estimator.backbone_kwargs)
        return estimator._auto_layer([name for name, _ in stages.named_children()])

    def table_row(self):
        """The method's row of the README's table."""
        return f"| `{self.name}` | `{self.estimator.__name__}` | {self.task} — {self.paper} |"


def register_method(name: str, *, task: str, paper: str) -> Callable[[type], type]:
    """Class decorator: register a featurizer under ``name``.

    Parameters
    ----------
    name : str
        A short lowercase name, unique among the registered methods.
    task : str
        The pretext task in a few words.
    paper : str
        Where the method comes from, e.g. ``"Gidaris et al., ICLR 2018"``.

    Returns
    -------
    decorator : callable
        Registers the class and returns it unchanged.

    Examples
    --------
    >>> from skssl.base import BaseFeaturizer
    >>> from skssl.registry import METHODS, register_method, unregister_method
    >>> @register_method("mine", task="a pretext task of my own", paper="me, 2026")
    ... class MyFeaturizer(BaseFeaturizer):
    ...     strength: float = 0.5
    >>> METHODS["mine"].estimator is MyFeaturizer, MyFeaturizer(strength=1.0).strength
    (True, 1.0)
    >>> unregister_method("mine")
    """

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, BaseFeaturizer)):
            raise TypeError(f"register_method registers BaseFeaturizer subclasses, not {cls!r}.")
        if name in _METHODS and _METHODS[name].estimator is not cls:
            raise ValueError(
                f"A method named {name!r} is already registered ({_METHODS[name].estimator.__name__}); "
                f"choose another name or unregister_method({name!r}) first."
            )
        _METHODS[name] = Method(name, cls, task, paper)
        return cls

    return register


def unregister_method(name: str) -> None:
    """Remove the method registered as ``name`` (a ``KeyError`` if there is none)."""
    del _METHODS[name]


def markdown_table() -> str:
    """The README's table of methods, from the registry."""
    header = ["| name | estimator | pretext task |", "| --- | --- | --- |"]
    return "\n".join(header + [method.table_row() for method in METHODS.values()])
