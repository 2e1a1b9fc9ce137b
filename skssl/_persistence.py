"""Saving and loading fitted featurizers without pickle.

A saved file holds tensors (the trained weights) and plain data (the parameters and
fitted attributes as JSON text, the skssl and torch versions), written with
``torch.save`` and read back with ``torch.load(weights_only=True)``, whose unpickler
admits only tensors and built-in containers: loading runs no code from the file.
"""

import json
import pickle

import numpy as np
import torch

FORMAT_VERSION = 1
_FITTED = ("n_features_in_", "image_shape_", "value_range_", "layer_", "pool_", "history_", "n_iter_")


def _plain_parameters(featurizer):
    parameters = featurizer.get_params(deep=False)
    if not isinstance(parameters["backbone"], str):
        raise TypeError(
            f"save() stores backbones given by name ({featurizer.backbone!r} is a module); "
            f"use joblib.dump for featurizers with a custom backbone, and load such files "
            f"only from sources you trust."
        )
    if not isinstance(parameters["random_state"], (int, type(None))):
        parameters["random_state"] = None  # only used by fit
    parameters["device"] = str(parameters["device"])
    if parameters.get("checkpoint_dir") is not None:
        parameters["checkpoint_dir"] = str(parameters["checkpoint_dir"])
    return parameters


def save(featurizer, path):
    """Write a fitted featurizer to ``path`` in skssl's code-free format."""
    from . import __version__

    parameters = _plain_parameters(featurizer)
    fitted = {name: getattr(featurizer, name) for name in _FITTED}
    if hasattr(featurizer, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(name) for name in featurizer.feature_names_in_]
    document = {
        "class": type(featurizer).__name__,
        "parameters": parameters,
        "fitted": fitted,
        "versions": {"format": FORMAT_VERSION, "skssl": __version__, "torch": torch.__version__},
    }
    weights = {name: tensor.detach().cpu() for name, tensor in featurizer.task_.state_dict().items()}
    torch.save({"skssl": json.dumps(document), "weights": weights}, path)


def load(path):
    """Read a featurizer written by :meth:`BaseFeaturizer.save`.

    Parameters
    ----------
    path : str or path-like
        A file written by ``featurizer.save(path)``.

    Returns
    -------
    featurizer : BaseFeaturizer
        Fitted, on the CPU, ready to ``transform``.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_digits
    >>> from skssl import RotNetFeaturizer, load
    >>> X = load_digits().data[:64]
    >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "rotnet.pt")
    >>> featurizer.save(path)
    >>> load(path).transform(X).shape
    (64, 128)
    """
    from . import __version__
    from .base import BaseFeaturizer

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
        document = json.loads(content["skssl"])
        weights = content["weights"]
    except (KeyError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(
            f"{path} is not a featurizer saved by skssl (or it was tampered with): "
            f"{exc}. Only files written by featurizer.save() can be loaded."
        ) from exc
    versions = document.get("versions", {})
    if versions.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path} uses skssl file format {versions.get('format')} (written by skssl "
            f"{versions.get('skssl')}); this skssl {__version__} reads format "
            f"{FORMAT_VERSION}. Load it with a matching skssl version and refit."
        )
    classes = {cls.__name__: cls for cls in _featurizer_classes(BaseFeaturizer)}
    if document["class"] not in classes:
        raise ValueError(f"{path} holds an unknown featurizer class {document['class']!r}.")
    featurizer = classes[document["class"]](**document["parameters"])
    fitted = document["fitted"]
    for name, value in fitted.items():
        setattr(featurizer, name, value)
    featurizer.image_shape_ = tuple(featurizer.image_shape_)
    featurizer.value_range_ = tuple(featurizer.value_range_)
    if "feature_names_in_" in fitted:
        featurizer.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    featurizer.task_ = featurizer._empty_task()
    featurizer.task_.load_state_dict(weights)
    featurizer.task_.requires_grad_(False).eval()
    featurizer._n_features_out = featurizer.task_.backbone.pooled_size(featurizer.pool_, featurizer.layer_)
    return featurizer


def _featurizer_classes(cls):
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _featurizer_classes(subclass)
