"""Saving and loading without pickle (``skssl._persistence``): a saved file restores the
model and its fitted state; tampered files, other format versions and module instances
as backbones are refused."""

import os

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from skssl import (
    ContextEncoderFeaturizer,
    DenoisingAEFeaturizer,
    DINOFeaturizer,
    ExemplarFeaturizer,
    RotNetFeaturizer,
    SwAVFeaturizer,
    load,
)

from _testing import FAST, InterruptingNet, fit_settings

X = load_digits().data[:96]
TINY = fit_settings(4, 32)


class Payload:
    """What an attacker would put in a model file: code that runs on unpickling."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("cls", [RotNetFeaturizer, DenoisingAEFeaturizer])
def test_save_and_load_without_pickle(cls, tmp_path):
    from skssl import load

    featurizer = cls(**{**TINY, "max_epochs": 1}).fit(X)
    featurizer.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    assert type(restored) is cls and restored.get_params() == featurizer.get_params()
    np.testing.assert_array_equal(restored.transform(X), featurizer.transform(X))
    assert restored.history_ == featurizer.history_


def test_load_refuses_a_pickle_payload(tmp_path):
    import pickle

    from skssl import load

    path = tmp_path / "model.pt"
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}).fit(X).save(path)
    content = torch.load(path, weights_only=True)
    with open(path, "wb") as handle:  # a tampered file: same name, code inside
        torch.save({**content, "weights": Payload(tmp_path / "pwned")}, handle, pickle_module=pickle)
    with pytest.raises(ValueError, match="tampered"):
        load(path)
    assert not (tmp_path / "pwned").exists()


def test_load_refuses_another_format_version(tmp_path):
    import json

    from skssl import load

    path = tmp_path / "model.pt"
    RotNetFeaturizer(**{**TINY, "max_epochs": 1}).fit(X).save(path)
    content = torch.load(path, weights_only=True)
    document = json.loads(content["skssl"])
    document["versions"]["format"] = 99
    torch.save({**content, "skssl": json.dumps(document)}, path)
    with pytest.raises(ValueError, match="file format 99.*refit"):
        load(path)


def test_save_refuses_module_backbones(tmp_path):
    featurizer = DenoisingAEFeaturizer(**{**TINY, "max_epochs": 1}, backbone=InterruptingNet).fit(X)
    with pytest.raises(TypeError, match="joblib.dump"):
        featurizer.save(tmp_path / "model.pt")


@pytest.mark.parametrize(
    "cls, params, state", [(DINOFeaturizer, {}, "center"), (SwAVFeaturizer, dict(queue_size=40), "queue")]
)
def test_saved_file_keeps_the_fitted_state(cls, params, state, tmp_path):
    featurizer = cls(**FAST, **params).fit(X)
    featurizer.save(tmp_path / "model.pt")
    restored = load(tmp_path / "model.pt")
    torch.testing.assert_close(getattr(restored.task_, state), getattr(featurizer.task_, state))
    if cls is SwAVFeaturizer:
        assert restored.task_.queue_count == featurizer.task_.queue_count == 40
    np.testing.assert_array_equal(restored.transform(X), featurizer.transform(X))


@pytest.mark.parametrize("cls", [ContextEncoderFeaturizer, ExemplarFeaturizer])
def test_save_and_load_give_the_same_features(cls, tmp_path):
    X = load_digits().data[:64]
    featurizer = cls(**FAST).fit(X)
    featurizer.save(tmp_path / "model.pt")
    np.testing.assert_array_equal(load(tmp_path / "model.pt").transform(X), featurizer.transform(X))
