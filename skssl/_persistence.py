"""Saving and loading fitted estimators without pickle, behind one error boundary.

A saved file holds tensors (the trained weights) and plain data (the parameters and
fitted attributes as JSON text, the skssl and torch versions), written with
``torch.save`` and read back with ``torch.load(weights_only=True)``, whose unpickler
admits only tensors and built-in containers: loading runs no code from the file.

An estimator is a JSON document ``{"class", "parameters", "fitted"}``; an estimator
inside another (a classifier's ``featurizer`` and ``featurizer_``) is a nested
document, and its weights sit in the same flat dict under its attribute's name as a
prefix (``"featurizer_.backbone..."``). A featurizer's own weights have no prefix,
as in the files of the first format. Format 2 tags the values JSON has no type for
(numpy scalars, paths, devices) so that they come back as they were; format 1 files
still load.

Files are read and written through :mod:`skssl._files`, the one error boundary for
models and checkpoints.
"""

import copy
import json
import os
import warnings
from pathlib import Path, PurePath

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from ._files import read_file, write_atomically
from ._version import __version__

FORMAT_VERSION = 2
_READABLE_FORMATS = (1, 2)
_TUPLES = ("image_shape_", "value_range_")
_NUMPY_SCALARS = (np.bool_, np.integer, np.floating, np.str_)


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

    #: Parameters added after models of the class were first saved, each with the value
    #: that keeps what such a model did: a file or pickle without it gets this value,
    #: not the new default (CPC's ``readout`` was ``"image"`` before it existed).
    _earlier_parameters = {}

    def untrained_task(self):
        """The fitted network's architecture with fresh weights, built from the fitted
        attributes; :func:`skssl.load` fills it with the saved weights. Every
        estimator class with a ``task_`` implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement untrained_task().")

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted estimator to ``path`` without pickle; read it with :func:`skssl.load`.

        The file holds the weights as tensors and the parameters and fitted
        attributes as JSON; loading it runs no code. Backbones must be given by name.
        The file is written whole or not at all: after a failure a file that was
        already at ``path`` is left as it was.

        Parameters
        ----------
        path : str or path-like
            The file to write, in an existing folder.

        Raises
        ------
        OSError
            ``FileNotFoundError`` when the folder does not exist,
            ``IsADirectoryError`` when ``path`` is a folder, ``PermissionError``
            when the folder is not writable.
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
        super().__setstate__({**self._earlier_parameters, **state})
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
    write_atomically(
        path,
        {"skssl": json.dumps(document), "weights": weights},
        what="the model",
        fix="Choose a file path in an existing folder you can write to.",
    )


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

    Raises
    ------
    ValueError
        When the file is not one that ``save`` wrote, is damaged (cut short, edited,
        tampered with) or was written in a file format this skssl does not read.
        Nothing in the file runs as code, and nothing is half-loaded.
    OSError
        ``FileNotFoundError``, ``IsADirectoryError`` or ``PermissionError`` when
        ``path`` cannot be read.

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
    (64, 256)
    """
    fix = "Only files written by an skssl estimator's save() can be loaded; refit and save the model again."
    content = read_file(path, what="an estimator saved by skssl", fix=fix)
    document, weights = _parts(content, path, fix)
    versions = document.get("versions")
    written = versions.get("format") if isinstance(versions, dict) else None
    if written not in _READABLE_FORMATS:
        skssl_version = versions.get("skssl") if isinstance(versions, dict) else None
        raise ValueError(
            f"{path} uses skssl file format {written} (written by skssl {skssl_version}); "
            f"this skssl {__version__} reads formats {', '.join(map(str, _READABLE_FORMATS))}. "
            f"Load it with a matching skssl version and refit."
        )
    try:
        return _restore(document, weights, prefix="", path=path)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(
            f"{path} is damaged: its description of the estimator is incomplete or malformed "
            f"({type(exc).__name__}: {exc}). {fix}"
        ) from None


def _parts(content, path, fix):
    """The JSON document and the weights of a loaded file, checked for their types."""
    if not isinstance(content, dict) or not isinstance(content.get("skssl"), str):
        raise ValueError(f"{path} is not an estimator saved by skssl: it holds no skssl description. {fix}")
    try:
        document = json.loads(content["skssl"])
    except ValueError as exc:
        raise ValueError(f"{path} is damaged: its description is not valid JSON ({exc}). {fix}") from None
    weights = content.get("weights")
    if not isinstance(document, dict) or not isinstance(weights, dict):
        raise ValueError(f"{path} is damaged: it lacks the estimator's description or weights. {fix}")
    return document, weights


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
    document = {"class": type(estimator).__name__, "parameters": {}}
    for name, value in parameters.items():
        nested = f"{prefix}{name}."
        try:
            document["parameters"][name] = _encode(value, lambda inner, at=nested: _describe(inner, weights, at))
        except _Unstorable as exc:
            raise TypeError(
                f"save() cannot store the parameter {name}={value!r}: {exc}. Use joblib.dump, "
                f"and load such files only from sources you trust."
            ) from None
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


class _Unstorable(TypeError):
    """A value that a file could not give back as it was."""


def describe_parameters(estimator, leave_out):
    """``{"class", "parameters"}`` of ``estimator`` as JSON-able values, without the
    parameters named in ``leave_out``; an estimator among them is described alike.

    What a checkpoint records of the estimator that wrote it. Values a file could not
    restore (a module given as backbone) are described by their class or repr.
    """
    if isinstance(estimator, FrozenEstimator):
        inner = describe_parameters(estimator.estimator, leave_out)
        return {"class": "FrozenEstimator", "parameters": {"estimator": {"__estimator__": inner}}}
    parameters = estimator.get_params(deep=False)
    return {
        "class": type(estimator).__name__,
        "parameters": {
            name: _encode(value, lambda inner: describe_parameters(inner, leave_out), strict=False)
            for name, value in sorted(parameters.items())
            if name not in leave_out
        },
    }


def _encode(value, describe=None, *, strict=True):
    """A JSON-able form of a parameter or attribute value that :func:`decode` restores.

    ``describe`` gives the document of an estimator inside; an unknown type raises a
    ``TypeError``, or with ``strict=False`` is described by its class or repr.
    """
    if isinstance(value, _NUMPY_SCALARS):  # from a grid search: np.int64(8) stays np.int64(8)
        return {"__numpy__": value.dtype.str, "value": value.item()}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, describe, strict=strict) for v in value]}
    if isinstance(value, list):
        return [_encode(v, describe, strict=strict) for v in value]
    if isinstance(value, dict):
        if strict and not all(isinstance(key, str) for key in value):
            raise _Unstorable("a dict with keys that are not strings")
        return {str(k): _encode(v, describe, strict=strict) for k, v in value.items()}
    if hasattr(value, "get_params") and describe is not None:  # an estimator inside an estimator
        return {"__estimator__": describe(value)}
    if hasattr(value, "location"):  # a joblib.Memory: its folder
        return None if value.location is None else str(value.location)
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, np.random.RandomState):
        return None  # only fit uses it
    if isinstance(value, PurePath):
        return {"__path__": str(value)}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if strict:
        raise _Unstorable(f"a value of type {type(value).__name__}, which a file cannot hold")
    if isinstance(value, type):
        return {"__repr__": f"{value.__module__}.{value.__qualname__}"}
    return {"__repr__": repr(value)}


def decode(value, weights=None, prefix="", path=None):
    """The value :func:`_encode` described; estimators inside are restored from ``weights``."""
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(decode(v, weights, prefix, path) for v in value["__tuple__"])
    if isinstance(value, dict) and "__numpy__" in value:
        return np.dtype(value["__numpy__"]).type(value["value"])
    if isinstance(value, dict) and "__path__" in value:
        return Path(value["__path__"])
    if isinstance(value, dict) and "__device__" in value:
        return torch.device(value["__device__"])
    if isinstance(value, dict) and "__estimator__" in value:
        return _restore(value["__estimator__"], weights, prefix, path)
    if isinstance(value, dict):
        return {k: decode(v, weights, prefix, path) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, weights, prefix, path) for v in value]
    return value


def _restore(document, weights, prefix, path):
    """The estimator a document describes, fitted when the document holds fitted state."""
    if document.get("class") == "FrozenEstimator":
        return FrozenEstimator(_restore(document["estimator"], weights, prefix + "estimator.", path))
    classes = _classes()
    name = document.get("class")
    if name not in classes:
        raise ValueError(f"{path} holds an unknown estimator class {name!r}; it is damaged or from another program.")
    parameters = {key: decode(value, weights, f"{prefix}{key}.", path) for key, value in document["parameters"].items()}
    estimator = _construct(classes[name], parameters, path)
    fitted = document.get("fitted")
    if fitted is None:
        return estimator
    missing = sorted({*estimator._saved_attributes} - fitted.keys())
    if missing:
        raise ValueError(f"{path} is damaged: the fitted {name} in it lacks {', '.join(missing)}.")
    for key, value in fitted.items():
        if key == "classes_":
            estimator.classes_ = np.asarray(value["values"], dtype=np.dtype(value["dtype"]))
        elif key == "featurizer_":
            estimator.featurizer_ = _restore(value, weights, prefix + "featurizer_.", path)
            if not hasattr(estimator.featurizer_, "task_"):
                raise ValueError(f"{path} is damaged: the {name} in it holds an unfitted featurizer_.")
        elif key == "feature_names_in_":
            estimator.feature_names_in_ = np.asarray(value, dtype=object)
        else:
            decoded = decode(value, weights, prefix, path)
            setattr(estimator, key, tuple(decoded) if key in _TUPLES else decoded)
    estimator.task_ = _trained_task(estimator, weights, prefix, path)
    return estimator


def _construct(cls, parameters, path):
    """``cls(**parameters)``, its parameters validated as ``fit`` would."""
    unknown = sorted(parameters.keys() - set(cls._get_param_names()))
    if unknown:
        raise ValueError(
            f"{path} gives {cls.__name__} the parameters {', '.join(unknown)}, which it does not take; "
            f"the file is damaged or was written by another skssl version."
        )
    estimator = cls(**{**getattr(cls, "_earlier_parameters", {}), **parameters})
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise ValueError(f"{path} is damaged: {exc}") from None
    return estimator


def _trained_task(estimator, weights, prefix, path):
    """The estimator's network with the weights of the file, checked before loading."""
    name = type(estimator).__name__
    try:
        task = estimator.untrained_task()
    except MemoryError:
        raise
    except Exception as exc:  # parameters a file should not hold; torch's words would not say which
        reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
        raise ValueError(f"{path} is damaged: it describes a {name} that cannot be rebuilt ({reason}).") from None
    nested = ("featurizer_.", "featurizer.", "estimator.")
    own = {
        key[len(prefix) :]: tensor
        for key, tensor in weights.items()
        if key.startswith(prefix) and not key[len(prefix) :].startswith(nested)
    }
    problems = weight_mismatches(own, task.state_dict())
    if problems:
        raise ValueError(f"{path} is damaged: the weights do not fit the {name} it describes ({problems}).")
    try:
        task.load_state_dict(own)
    except Exception:  # an extra state (a queue's length) of the wrong kind
        raise ValueError(f"{path} is damaged: the weights do not fit the {name} it describes.") from None
    # as fit leaves every network: the layout picks the conv kernels, and so the last bits
    return task.to(memory_format=torch.channels_last).requires_grad_(False).eval()


def weight_mismatches(saved, expected):
    """What keeps the state dict ``saved`` from loading into a module whose state dict is
    ``expected``, in words ("" when nothing does)."""
    missing = sorted(expected.keys() - saved.keys())
    unexpected = sorted(saved.keys() - expected.keys())
    shapes = [
        f"{key} has shape {tuple(saved[key].shape)}, not {tuple(expected[key].shape)}"
        if isinstance(saved[key], torch.Tensor)
        else f"{key} is a {type(saved[key]).__name__}, not a tensor"
        for key in sorted(expected.keys() & saved.keys())
        if isinstance(expected[key], torch.Tensor)
        and not key.endswith("_extra_state")  # sized by the data (DeepCluster's pseudo-labels)
        and (not isinstance(saved[key], torch.Tensor) or saved[key].shape != expected[key].shape)
    ]
    problems = [*shapes]
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    return "; ".join(problems[:3] + ([f"and {len(problems) - 3} more"] if len(problems) > 3 else []))


def _few(names):
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
