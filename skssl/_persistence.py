"""Saving and loading fitted estimators without pickle.

A saved file holds tensors (the trained weights) and plain data (the parameters and
fitted attributes as JSON text, the skssl and torch versions), written with
``torch.save`` and read back with ``torch.load(weights_only=True)``, whose unpickler
admits only tensors and built-in containers: loading runs no code from the file.

An estimator is a JSON document ``{"class", "parameters", "fitted"}``; an estimator
inside another (a classifier's ``featurizer`` and ``featurizer_``) is a nested
document, and its weights sit in the same flat dict under its attribute's name as a
prefix (``"featurizer_.backbone..."``). A featurizer's own weights have no prefix,
as in the files of the first format.
"""

import copy
import json
import os
import pickle
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from ._version import __version__

FORMAT_VERSION = 1
_TUPLES = ("image_shape_", "value_range_")


class SavedModelMixin:
    """What every skssl estimator with a trained ``task_`` shares: the safe file format
    and pickling.

    A class lists the fitted attributes its files keep (``_saved_attributes``) and
    rebuilds its network's architecture from them (:meth:`untrained_task`); weights
    are then loaded into it. Pickling stores ``task_`` on the CPU, so that a model
    fitted on a GPU loads on a machine without one (and goes back to the GPU where
    there is one).
    """

    #: Fitted attributes written to a file as JSON (besides ``classes_``,
    #: ``feature_names_in_`` and ``featurizer_``, which every class may have).
    _saved_attributes = ("n_features_in_", "image_shape_", "value_range_", "layer_", "history_", "n_iter_")

    def untrained_task(self):
        """The fitted network's architecture with fresh weights, built from the fitted
        attributes; :func:`skssl.load` fills it with the saved weights."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted estimator to ``path`` without pickle; read it with :func:`skssl.load`.

        The file holds the weights as tensors and the parameters and fitted
        attributes as JSON; loading it runs no code. Backbones must be given by name.

        Parameters
        ----------
        path : str or path-like
            The file to write.
        """
        check_is_fitted(self)
        save(self, path)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "task_")

    def __getstate__(self):
        state = super().__getstate__()
        task = state.get("task_")
        if task is not None and task.backbone.mean.device.type != "cpu":
            state["task_"] = copy.deepcopy(task).cpu()
            state["fitted_device_"] = str(task.backbone.mean.device)
        return state

    def __setstate__(self, state):
        fitted_device = state.pop("fitted_device_", None)
        super().__setstate__(state)
        if fitted_device is not None:
            if torch.cuda.is_available():
                self.task_.to(fitted_device)
            else:
                warnings.warn(
                    f"This {type(self).__name__} was fitted on {fitted_device}; CUDA is "
                    f"not available here, so it runs on the CPU.",
                    UserWarning,
                    stacklevel=2,
                )


def save(estimator, path):
    """Write a fitted skssl estimator to ``path`` in skssl's code-free format."""
    weights = {}
    document = _describe(estimator, weights, prefix="")
    document["versions"] = {"format": FORMAT_VERSION, "skssl": __version__, "torch": torch.__version__}
    torch.save({"skssl": json.dumps(document), "weights": weights}, path)


def load(path: str | os.PathLike) -> BaseEstimator:
    """Read an estimator written by ``save``: a featurizer or a classifier.

    Parameters
    ----------
    path : str or path-like
        A file written by ``estimator.save(path)``.

    Returns
    -------
    estimator : BaseFeaturizer, FineTunedClassifier or SupervisedClassifier
        Fitted, on the CPU, ready to ``transform`` or ``predict``.

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
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
        document = json.loads(content["skssl"])
        weights = content["weights"]
    except (KeyError, TypeError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(
            f"{path} is not an estimator saved by skssl (or it was tampered with): "
            f"{exc}. Only files written by an skssl estimator's save() can be loaded."
        ) from exc
    versions = document.get("versions", {})
    if versions.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path} uses skssl file format {versions.get('format')} (written by skssl "
            f"{versions.get('skssl')}); this skssl {__version__} reads format "
            f"{FORMAT_VERSION}. Load it with a matching skssl version and refit."
        )
    return _restore(document, weights, prefix="", path=path)


def _classes():
    """The estimator classes a file may name: every class with the safe format."""

    def subclasses(cls):
        for subclass in cls.__subclasses__():
            yield subclass
            yield from subclasses(subclass)

    return {cls.__name__: cls for cls in subclasses(SavedModelMixin)}


def _describe(estimator, weights, prefix):
    """The JSON document of ``estimator``; its weights go into ``weights`` under ``prefix``."""
    if isinstance(estimator, FrozenEstimator):
        return {"class": "FrozenEstimator", "estimator": _describe(estimator.estimator, weights, prefix + "estimator.")}
    if type(estimator).__name__ not in _classes():
        raise TypeError(f"save() stores skssl estimators, not {type(estimator).__name__}; use joblib.dump.")
    parameters = estimator.get_params(deep=False)
    if not isinstance(parameters.get("backbone", ""), str):
        raise TypeError(
            f"save() stores backbones given by name ({estimator.backbone!r} is a module); "
            f"use joblib.dump for estimators with a custom backbone, and load such files "
            f"only from sources you trust."
        )
    document = {
        "class": type(estimator).__name__,
        "parameters": {name: _encode(value, weights, f"{prefix}{name}.") for name, value in parameters.items()},
    }
    if not hasattr(estimator, "task_"):
        return document
    fitted = {name: _encode(getattr(estimator, name)) for name in estimator._saved_attributes}
    if hasattr(estimator, "classes_"):
        fitted["classes_"] = {"values": estimator.classes_.tolist(), "dtype": estimator.classes_.dtype.str}
    if hasattr(estimator, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(name) for name in estimator.feature_names_in_]
    if hasattr(estimator, "featurizer_"):
        fitted["featurizer_"] = _describe(estimator.featurizer_, weights, prefix + "featurizer_.")
    document["fitted"] = fitted
    weights.update({prefix + name: tensor.detach().cpu() for name, tensor in estimator.task_.state_dict().items()})
    return document


def _encode(value, weights=None, prefix=""):
    """A JSON-able form of a parameter or attribute value."""
    if isinstance(value, np.generic):
        return value.item()  # numpy scalars, e.g. from a grid search
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if hasattr(value, "get_params"):  # an estimator inside an estimator
        return {"__estimator__": _describe(value, weights, prefix)}
    if hasattr(value, "location"):  # a joblib.Memory: its folder
        return str(value.location)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, np.random.RandomState):
        return None  # only fit uses it
    return str(value)  # torch.device, paths


def _decode(value, weights, prefix, path):
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_decode(v, weights, prefix, path) for v in value["__tuple__"])
    if isinstance(value, dict) and "__estimator__" in value:
        return _restore(value["__estimator__"], weights, prefix, path)
    if isinstance(value, dict):
        return {k: _decode(v, weights, prefix, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, weights, prefix, path) for v in value]
    return value


def _restore(document, weights, prefix, path):
    """The estimator a document describes, fitted when the document holds fitted state."""
    if document.get("class") == "FrozenEstimator":
        return FrozenEstimator(_restore(document["estimator"], weights, prefix + "estimator.", path))
    classes = _classes()
    if document.get("class") not in classes:
        raise ValueError(f"{path} holds an unknown estimator class {document.get('class')!r}.")
    parameters = {
        name: _decode(value, weights, f"{prefix}{name}.", path) for name, value in document["parameters"].items()
    }
    estimator = classes[document["class"]](**parameters)
    fitted = document.get("fitted")
    if fitted is None:
        return estimator
    for name, value in fitted.items():
        if name == "classes_":
            estimator.classes_ = np.asarray(value["values"], dtype=np.dtype(value["dtype"]))
        elif name == "featurizer_":
            estimator.featurizer_ = _restore(value, weights, prefix + "featurizer_.", path)
        elif name == "feature_names_in_":
            estimator.feature_names_in_ = np.asarray(value, dtype=object)
        else:
            decoded = _decode(value, weights, prefix, path)
            setattr(estimator, name, tuple(decoded) if name in _TUPLES else decoded)
    task = estimator.untrained_task()
    own = {
        name[len(prefix) :]: tensor
        for name, tensor in weights.items()
        if name.startswith(prefix) and not name[len(prefix) :].startswith(("featurizer_.", "featurizer.", "estimator."))
    }
    try:
        task.load_state_dict(own)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit a {document['class']} ({exc}).") from exc
    estimator.task_ = task.requires_grad_(False).eval()
    return estimator
