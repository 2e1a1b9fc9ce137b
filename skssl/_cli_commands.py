"""What the command line's fit, predict, embed and evaluate do, given argparse's ``args``.

Each returns the exit status; errors are raised for :func:`skssl.cli.main` to report.
"""

import argparse
import ast
import sys

import numpy as np
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from ._cli_data import read_data, read_labels
from ._cli_output import (
    FEATURE_SUFFIXES,
    PREDICTION_SUFFIXES,
    aligned,
    checked_output,
    write_features,
    write_predictions,
)
from ._persistence import load
from .evaluation import _knn_accuracy, _linear_accuracy
from .registry import METHODS
from .semi_supervised import labeled_mask
from .transfer import FineTunedClassifier

#: ``--set`` names with this prefix set the classifier that ``skssl fit --labels`` trains.
CLASSIFIER_PREFIX = "classifier."


def parse_setting(text):
    """``--set NAME=VALUE`` as ``(name, value)``.

    The value is read as a Python literal where it is one (``3``, ``1e-3``,
    ``(3, 3)`` or ``3,3``, ``None``, ``True``, ``{"widths": (8, 16)}``), else kept as
    the string (``conv2``, ``cuda:0``).
    """
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass  # a word
    return name.strip(), value


def _model_to_fit(method, settings, *, labeled, verbose):
    """METHOD's featurizer (in a :class:`~skssl.FineTunedClassifier` when ``labeled``)
    with the ``--set`` settings, checked by the estimators' own validation."""
    for_classifier = {
        name.removeprefix(CLASSIFIER_PREFIX): value for name, value in settings if name.startswith(CLASSIFIER_PREFIX)
    }
    for_featurizer = {name: value for name, value in settings if not name.startswith(CLASSIFIER_PREFIX)}
    featurizer = _configured(METHODS[method].estimator(verbose=verbose), for_featurizer)
    if labeled:
        return _configured(FineTunedClassifier(featurizer, verbose=verbose), for_classifier)
    if for_classifier:
        raise ValueError(
            f"--set {CLASSIFIER_PREFIX}NAME=VALUE sets the classifier that --labels trains; without --labels "
            f"there is none."
        )
    return featurizer


def _configured(estimator, settings):
    """``estimator`` with ``settings``: an unknown name or a bad value fails now, in the estimator's words."""
    estimator.set_params(**settings)
    estimator._validate_params()
    return estimator


def fit_command(args):
    """``skssl fit``: METHOD fitted on DATA (a classifier with ``--labels``), saved to MODEL."""
    output = checked_output(args.output, "MODEL")
    model = _model_to_fit(args.method, args.set, labeled=args.labels is not None, verbose=0 if args.quiet else 1)
    data = read_data(args.data, size=args.size, mode=args.mode or "RGB", n_jobs=args.n_jobs)
    if args.labels is None:
        model.fit(data.all())
    else:
        labels = read_labels(args.labels, data, args.data)  # before reading the images: a bad file fails at once
        model.fit(data.all(), labels)
    model.save(output)
    _done(args, f"saved a {_described(model)} fitted on {len(data)} images to {output}")
    return 0


def predict_command(args):
    """``skssl predict``: MODEL's class of every image of DATA, to a .csv or an .npy."""
    output = checked_output(args.output, "PREDICTIONS", PREDICTION_SUFFIXES)
    model = _load_model(args.model, predicts=True)
    data = _model_data(args, model)
    predictions = np.concatenate(list(_chunkwise(model.predict, data, args)))
    paths = write_predictions(output, data, predictions)
    _done(args, f"wrote {len(predictions)} predictions to {output}{_paths_note(paths)}")
    return 0


def embed_command(args):
    """``skssl embed``: MODEL's features of every image of DATA, to an .npy, a .csv or a .parquet."""
    output = checked_output(args.output, "FEATURES", FEATURE_SUFFIXES)
    model = _load_model(args.model)
    data = _model_data(args, model)
    columns = model.get_feature_names_out()
    paths = write_features(output, data, _chunkwise(model.transform, data, args), columns)
    _done(args, f"wrote {len(data)} x {len(columns)} features to {output}{_paths_note(paths)}")
    return 0


def evaluate_command(args):
    """``skssl evaluate``: linear and kNN probes on MODEL's features of the labeled images, as a table."""
    model = _load_model(args.model)
    data = _model_data(args, model)
    labels = read_labels(args.labels, data, args.data)
    labeled = np.flatnonzero(labeled_mask(labels))
    if len(labeled) == 0:
        raise ValueError(f"--labels {args.labels} labels none of the {len(data)} images of {args.data}.")
    features = np.concatenate(list(_chunkwise(model.transform, data.subset(labeled), args)))
    y = labels[labeled]
    train, test = train_test_split(np.arange(len(y)), test_size=args.test_size, stratify=y, random_state=args.seed)
    linear = _linear_accuracy(features[train], y[train], features[test], y[test])
    knn = _knn_accuracy(features[train], y[train], features[test], y[test], k=args.k)
    row = (_described(model), str(len(train)), str(len(test)), f"{linear:.3f}", f"{knn:.3f}")
    for line in aligned(("method", "n train", "n test", "linear acc", "kNN acc"), [row], right=(1, 2, 3, 4)):
        print(line)
    return 0


def _load_model(path, *, predicts=False):
    """The model saved at ``path``, silent; one that ``predicts`` when asked."""
    model = load(path)
    if predicts and not hasattr(model, "predict"):
        raise ValueError(
            f"MODEL {path} holds a {type(model).__name__}, which embeds images but does not predict; "
            f"fit a classifier with skssl fit METHOD DATA --labels ... -o MODEL."
        )
    return model.set_params(verbose=0)  # the command line shows the progress, a chunk at a time


def _model_data(args, model):
    """DATA for a fitted model: a folder's images at the size and in the colours the
    model was fitted on, unless --size or --mode say otherwise."""
    channels, height, width = model.image_shape_
    mode = args.mode or ("L" if channels == 1 else "RGB")
    return read_data(args.data, size=args.size or (height, width), mode=mode, n_jobs=args.n_jobs)


def _chunkwise(method, data, args):
    """``method`` of each chunk of ``data`` in turn, under a progress bar unless --quiet."""
    with tqdm(total=len(data), unit="image", file=sys.stderr, disable=True if args.quiet else None, leave=False) as bar:
        for chunk in data.chunks(args.chunk_size):
            yield method(chunk)
            bar.update(len(chunk))


def _described(model):
    """``"RotNetFeaturizer"``, or ``"FineTunedClassifier(RotNetFeaturizer)"`` for a classifier."""
    featurizer = getattr(model, "featurizer_", None)
    return type(model).__name__ + ("" if featurizer is None else f"({type(featurizer).__name__})")


def _paths_note(paths):
    """Where the image paths went, for the closing message."""
    return "" if paths is None else f" (image paths in {paths})"


def _done(args, message):
    """The closing message on stderr, unless --quiet."""
    if not args.quiet:
        print(f"skssl: {message}", file=sys.stderr)
