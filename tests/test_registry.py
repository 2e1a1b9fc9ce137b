"""The method registry: every featurizer is in it once, the README's table is made from
it, and it refuses what is not a method."""

import re
from pathlib import Path

import pytest

import skssl
from skssl.base import BaseFeaturizer
from skssl.registry import METHODS, markdown_table, register_method

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_public_featurizer_is_registered_once():
    featurizers = {
        getattr(skssl, name)
        for name in skssl.__all__
        if isinstance(getattr(skssl, name), type)
        and issubclass(getattr(skssl, name), BaseFeaturizer)
        and getattr(skssl, name) is not BaseFeaturizer
    }
    registered = [method.estimator for method in METHODS.values()]
    assert sorted(registered, key=str) == sorted(featurizers, key=str)
    assert all(re.fullmatch(r"[a-z_]+", name) for name in METHODS)


def test_the_readme_table_is_the_registrys():
    assert markdown_table() in README.read_text()


def test_each_method_knows_its_default_backbone_layer_and_epochs():
    assert METHODS["rotnet"].default_backbone == "wide_cnn"
    assert METHODS["simclr"].default_backbone == "wide_cnn"
    assert METHODS["mae"].default_backbone == "vit_tiny"
    assert METHODS["rotnet"].default_layer == METHODS["counting"].default_layer == "conv2"  # the stage before the last
    assert METHODS["simclr"].default_layer == "conv3"
    assert METHODS["simclr"].default_epochs == 100
    assert all(method.paper and method.task for method in METHODS.values())


def test_registering_refuses_a_taken_name_and_a_non_featurizer():
    with pytest.raises(ValueError, match="'simclr' is already registered"):
        register_method("simclr", task="t", paper="p")(skssl.RotNetFeaturizer)
    with pytest.raises(TypeError, match="BaseFeaturizer subclasses"):
        register_method("nothing", task="t", paper="p")(dict)
    assert METHODS["simclr"].estimator is skssl.SimCLRFeaturizer
