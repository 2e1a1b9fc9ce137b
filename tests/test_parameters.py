"""Parameters declared once (skssl._parameters): every public estimator's signature,
defaults, constraints and docs come from one declaration per parameter."""

import ast
import inspect
import pydoc

import pytest

import skssl
from skssl._parameters import DeclaredParameters

ESTIMATORS = [
    getattr(skssl, name)
    for name in skssl.__all__
    if isinstance(getattr(skssl, name), type) and issubclass(getattr(skssl, name), DeclaredParameters)
]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_signature_shows_every_parameter_with_its_default_and_no_kwargs(cls):
    parameters = inspect.signature(cls).parameters.values()
    assert all(p.kind is not p.VAR_KEYWORD and p.kind is not p.VAR_POSITIONAL for p in parameters)
    required = [p.name for p in parameters if p.default is p.empty]
    assert required == (["featurizer"] if cls is skssl.FineTunedClassifier else [])
    assert set(cls._parameter_constraints) == {p.name for p in parameters}
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert all(f"{p.name}:" in text for p in parameters)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_every_parameter_is_documented(cls):
    documented = set()
    for line in (cls.__doc__ or "").splitlines():
        if line.startswith("    ") and not line.startswith("     ") and " : " in line:
            documented.add(line.split(" : ")[0].strip())
    assert set(inspect.signature(cls).parameters) <= documented


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_the_documented_defaults_are_the_signature_s(cls):
    """``name : type, default=value`` in the docs, with the class's own value."""
    documented = {}
    for line in (cls.__doc__ or "").splitlines():
        if line.startswith("    ") and not line.startswith("     ") and " : " in line:
            name, _, description = line.strip().partition(" : ")
            documented[name] = description.rpartition("default=")[2] if "default=" in description else None
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.default is not parameter.empty:
            assert ast.literal_eval(documented[parameter.name]) == parameter.default, parameter.name


def test_a_subclass_overrides_a_default_without_retyping_the_rest():
    simclr = inspect.signature(skssl.SimCLRFeaturizer).parameters
    moco = inspect.signature(skssl.MoCoFeaturizer).parameters  # the two-view methods' 50
    rotnet = inspect.signature(skssl.RotNetFeaturizer).parameters
    assert (simclr["max_epochs"].default, moco["max_epochs"].default, rotnet["max_epochs"].default) == (100, 50, 30)
    assert simclr["learning_rate"].default == rotnet["learning_rate"].default == 1e-3
    assert skssl.SimCLRFeaturizer(temperature=0.1).get_params()["temperature"] == 0.1


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_a_class_declares_only_its_own_parameters_and_changed_defaults(cls):
    """No class re-declares an inherited parameter at the default it inherits."""
    for klass in cls.__mro__:
        for name in vars(klass).get("__annotations__", {}):
            inherited = [base for base in klass.__mro__[1:] if name in getattr(base, "__dataclass_fields__", {})]
            if inherited:
                default = inherited[0].__dataclass_fields__[name].default
                assert klass.__dataclass_fields__[name].default != default, f"{klass.__name__}.{name}"
