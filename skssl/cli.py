"""The skssl command line (also: python -m skssl).

  skssl fit METHOD DATA -o MODEL          pretext-train a method (a classifier, with --labels)
  skssl predict MODEL DATA -o PREDICTIONS the class of every image, to .csv or .npy
  skssl embed MODEL DATA -o FEATURES      the features, to .npy, .csv or .parquet, a chunk at a time
  skssl evaluate MODEL DATA --labels ...  linear and kNN probes on a stratified split
  skssl methods                           every method, by the name METHOD takes
  skssl demo                              pretext training and transfer on the digits

DATA is a folder of images (at any depth), a folder of MNIST's idx files, or an .npy
or .npz array. skssl COMMAND --help tells more.
"""

import argparse
import os
import sys
import time

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from . import FineTunedClassifier
from ._cli_commands import (
    CLASSIFIER_PREFIX,
    embed_command,
    evaluate_command,
    fit_command,
    parse_setting,
    predict_command,
)
from ._cli_output import aligned
from .evaluation import linear_probe, pixel_probe
from .registry import METHODS

# Pretext budgets for the demo's pool of 898 small images: about 2,000 optimizer steps
# each (the defaults' epochs give a few hundred steps there). Any registered method
# runs (skssl.registry); those not listed here run at their defaults.
BUDGETS = {
    "simclr": {"max_epochs": 300, "batch_size": 128},
    "vicreg": {"max_epochs": 300, "batch_size": 128},
    "byol": {"max_epochs": 300, "batch_size": 128},
}
# What it runs by default: the one whose fine-tuned network beat the labels-only network
# at most seeds of the digits validation split (5 of 6; VICReg 2, BYOL 3; the average
# gains of the other two are a fraction of a point: benchmarks/RESULTS.md).
DEFAULT_METHODS = ("simclr",)
# Fine-tuning batches of 32 for the 180 labels: 600 steps in the default 100 epochs, the
# setting measured on the digits validation split (benchmarks/RESULTS.md).
FINE_TUNING = {"batch_size": 32}
COLUMNS = (  # key, header, width, format
    ("pretext_seconds", "pretext s", 10, ".1f"),
    ("probe_accuracy", "frozen", 8, ".3f"),
    ("fine_tuned_accuracy", "fine-tuned", 12, ".3f"),
    ("self_trained_accuracy", "+ self-train", 14, ".3f"),
    ("supervised_accuracy", "labels only", 13, ".3f"),
    ("random_init_accuracy", "random init", 13, ".3f"),
    ("raw_pixel_accuracy", "raw pixels", 12, ".3f"),
)


def demo(
    *, methods=DEFAULT_METHODS, max_epochs=None, label_fraction=0.1, random_state=0, out=None, progress=None, verbose=1
):
    """Pretext-train each method on digits, then transfer it to a few labels.

    Half of sklearn's digits are the training pool, the other half the test set;
    ``label_fraction`` of all images (taken from the pool) keep their labels. Per
    method (any of :data:`skssl.registry.METHODS`): pretext training on the whole pool
    (:data:`BUDGETS` gives a method its budget; ``max_epochs`` overrides it); a logistic-regression probe on the frozen
    features of the labeled images; the network fine-tuned on the labels
    (:class:`~skssl.FineTunedClassifier`, ``semi_supervised=None``), and then
    self-trained on the unlabeled pool (its default); the same network from its random
    initial weights trained the same way on the labels alone; the probe on its
    random-init features, and on raw pixels. Returns the table as a list of dicts.
    """
    from .datasets import load_digits_images

    out = sys.stdout if out is None else out
    progress = sys.stderr if progress is None else progress
    X, y = load_digits_images()
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.5, stratify=y, random_state=random_state)
    n_labels = int(round(label_fraction * len(X)))
    labeled, _ = train_test_split(
        np.arange(len(X_pool)), train_size=n_labels, stratify=y_pool, random_state=random_state
    )
    y_partial = np.full(len(X_pool), -1)
    y_partial[labeled] = y_pool[labeled]
    X_labeled, y_labeled = X_pool[labeled], y_pool[labeled]
    raw = pixel_probe(X_labeled, y_labeled, X_test, y_test)
    print(
        f"digits: {len(X_pool)} training images, {n_labels} of them labeled ({label_fraction:.0%} of "
        f"all digits); {len(X_test)} test images, never seen in training.\n"
        f"Test accuracy of each method's network: its frozen features under a logistic regression; "
        f"fine-tuned\non the labels; then self-trained on the unlabeled images; the same network "
        f"trained on the labels\nalone; its random-init features; and raw pixels.\n",
        file=out,
    )
    rows = []
    for name in methods:
        cls = METHODS[name].estimator
        featurizer = cls(**BUDGETS.get(name, {}), random_state=random_state, verbose=verbose)
        if max_epochs is not None:
            featurizer.set_params(max_epochs=max_epochs)
        method = cls.__name__
        _say(progress, f"{method}: pretext training on {len(X_pool)} unlabeled images")
        start = time.perf_counter()
        featurizer.fit(X_pool)
        pretext_seconds = time.perf_counter() - start
        untrained = clone(featurizer).set_params(max_epochs=0, verbose=0).fit(X_pool)  # same initial weights

        def accuracy(base, semi_supervised):
            classifier = FineTunedClassifier(
                FrozenEstimator(base),
                semi_supervised=semi_supervised,
                **FINE_TUNING,
                random_state=random_state,
                verbose=verbose,
            )
            return classifier.fit(X_pool, y_partial).score(X_test, y_test)

        _say(
            progress,
            f"{method}: fine-tuning on {n_labels} labels, then self-training on "
            f"{len(X_pool)} images; the same network on the labels alone",
        )
        row = {
            "method": method,
            "pretext_seconds": pretext_seconds,
            "probe_accuracy": linear_probe(featurizer, X_labeled, y_labeled, X_test, y_test),
            "fine_tuned_accuracy": accuracy(featurizer, None),
            "self_trained_accuracy": accuracy(featurizer, "self_training"),
            "supervised_accuracy": accuracy(untrained, None),
            "random_init_accuracy": linear_probe(untrained, X_labeled, y_labeled, X_test, y_test),
            "raw_pixel_accuracy": raw,
        }
        rows.append(row)
    header = f"{'method':<24}" + "".join(f"{title:>{width}}" for _, title, width, _ in COLUMNS)
    print(header, file=out)
    print("-" * len(header), file=out)
    for row in rows:  # after the training, so that progress bars do not split the table
        cells = "".join(f"{row[key]:>{width}{spec}}" for key, _, width, spec in COLUMNS)
        print(f"{row['method']:<24}{cells}", file=out)
    print(file=out)
    for line in _summary(rows):
        print(line, file=out)
    return rows


def _say(stream, message):
    print(f"  ... {message}", file=stream, flush=True)


def _summary(rows):
    """What the table says, in words: wins counted, not assumed."""
    lines = []
    for row in rows:
        tuned = row["fine_tuned_accuracy"]
        lines.append(
            f"{row['method']}: pretext training, then fine-tuning on the labels: {tuned:.3f}, "
            f"{tuned - row['supervised_accuracy']:+.3f} over the same network\ntrained on the labels "
            f"alone, {tuned - row['raw_pixel_accuracy']:+.3f} over raw pixels, "
            f"{tuned - row['probe_accuracy']:+.3f} over its frozen features."
        )
    if len(rows) > 1:
        wins = sum(
            row["fine_tuned_accuracy"] > max(row["supervised_accuracy"], row["raw_pixel_accuracy"]) for row in rows
        )
        lines.append(f"Fine-tuning beats the labels-only network and raw pixels for {wins} of {len(rows)} methods.")
    lines.append(
        f"Self-training adds little with the pool's few unlabeled digits; with MNIST's 10,000 it adds\n"
        f"about a point (benchmarks/RESULTS.md). Other methods: skssl demo --methods {','.join(BUDGETS)}"
    )
    return lines


def methods_table(out=None):
    """Print every registered method: its name, estimator, default backbone, layer and epochs, paper."""
    rows = [
        (
            name,
            method.estimator.__name__,
            method.default_backbone,
            method.default_layer,
            str(method.default_epochs),
            method.paper,
        )
        for name, method in METHODS.items()
    ]
    for line in aligned(("name", "estimator", "backbone", "layer", "epochs", "paper"), rows):
        print(line, file=out)


_DATA_HELP = (
    "a folder of images (.png, .jpg, ... at any depth, in sorted order), a folder of MNIST's idx files, "
    "or an .npy or .npz array (an .npz's X, or its only array)"
)
_LABELS_HELP = (
    "'folders': each image's first folder under DATA is its class (images directly in DATA are "
    "unlabeled); or a file: a CSV with path,label columns, or one label per row (a CSV or text file, "
    "an .npy, an .npz's y, an idx labels file). -1 or an empty cell: unlabeled"
)


def _reading_options():
    """The options of every command that reads DATA."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--size",
        type=_size,
        metavar="H,W",
        help="resize a folder's images to HEIGHT,WIDTH pixels (or N for N x N); default for fit: keep "
        "their size (the same for all), for the other commands: the size the model was fitted on",
    )
    options.add_argument(
        "--mode",
        choices=("RGB", "L"),
        help="read a folder's images in colour (RGB) or grayscale (L); default for fit: RGB, for the "
        "other commands: as the model was fitted",
    )
    options.add_argument("--n-jobs", type=int, metavar="N", help="threads that decode images (default 1; -1: all)")
    options.add_argument("--quiet", action="store_true", help="print no progress")
    return options


def _add_fit(commands, reading):
    """``skssl fit``: METHOD DATA -o MODEL, --set, --labels and the reading options."""
    fit = commands.add_parser(
        "fit",
        parents=[reading],
        help="pretext-train METHOD on DATA (with --labels, fine-tune a classifier) and save it",
        description="Pretext-train METHOD on the images of DATA and save the fitted featurizer to MODEL. With "
        "--labels, fit a FineTunedClassifier of METHOD's featurizer instead: pretext training on every image, "
        "fine-tuning on the labeled ones, then self-training on the others.",
    )
    fit.add_argument("method", metavar="METHOD", choices=list(METHODS), help="a method (skssl methods lists them)")
    fit.add_argument("data", metavar="DATA", help=_DATA_HELP)
    fit.add_argument("-o", "--output", required=True, metavar="MODEL", help="the file to save the model to")
    fit.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of METHOD's featurizer, e.g. max_epochs=50 (repeatable); VALUE is read as a Python "
        f"literal (3, 1e-3, (3, 3), None, True, {{...}}) or else as a word. With --labels, {CLASSIFIER_PREFIX}NAME="
        f"VALUE sets the classifier's, e.g. {CLASSIFIER_PREFIX}max_epochs=20",
    )
    fit.add_argument("--labels", metavar="folders|FILE", help=_LABELS_HELP)
    fit.set_defaults(run=fit_command)


def _add_model_commands(commands, reading):
    """predict, embed and evaluate: a fitted MODEL on DATA, a chunk of images at a time."""
    on_data = argparse.ArgumentParser(add_help=False, parents=[reading])
    on_data.add_argument("model", metavar="MODEL", help="a model saved by skssl fit (or an estimator's save())")
    on_data.add_argument("data", metavar="DATA", help=_DATA_HELP)
    on_data.add_argument(
        "--chunk-size", type=_positive_int, default=1024, metavar="N", help="images read at a time (default 1024)"
    )
    predict = commands.add_parser("predict", parents=[on_data], help="predict the class of every image")
    predict.add_argument(
        "-o", "--output", required=True, metavar="PREDICTIONS", help=".csv (path or index, prediction) or .npy"
    )
    predict.set_defaults(run=predict_command)
    embed = commands.add_parser("embed", parents=[on_data], help="write the features of every image")
    embed.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FEATURES",
        help=".npy (with a folder's image paths in FEATURES.paths.txt), or .csv or .parquet (needs pyarrow) "
        "whose first column, the row index, holds the paths or row indices",
    )
    embed.set_defaults(run=embed_command)
    evaluate = commands.add_parser(
        "evaluate", parents=[on_data], help="linear and kNN probes on the features, on a stratified split"
    )
    evaluate.add_argument("--labels", required=True, metavar="folders|FILE", help=_LABELS_HELP)
    evaluate.add_argument("--test-size", type=float, default=0.2, help="the labeled images held out (default 0.2)")
    evaluate.add_argument("--seed", type=int, default=0, help="seeds the split (default 0)")
    evaluate.add_argument("--k", type=_positive_int, default=200, help="neighbours of the kNN probe (default 200)")
    evaluate.set_defaults(run=evaluate_command)


def _add_demo(commands):
    """``skssl demo``, as it always was."""
    demo_parser = commands.add_parser(
        "demo", help="pretext-train each method on digits, then fine-tune it on 10%% of the labels"
    )
    demo_parser.add_argument(
        "--methods",
        type=_method_names,
        default=",".join(DEFAULT_METHODS),
        help="comma-separated, of: " + ", ".join(METHODS),
    )
    demo_parser.add_argument("--max-epochs", type=int, default=None, help="override every method's pretext epochs")
    demo_parser.add_argument("--label-fraction", type=float, default=0.1)
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--quiet", action="store_true", help="no progress bars, only the table")
    demo_parser.set_defaults(run=_run_demo)


def _run_demo(args):
    """``skssl demo``."""
    demo(
        methods=args.methods,
        max_epochs=args.max_epochs,
        label_fraction=args.label_fraction,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    return 0


def _run_methods(args):
    """``skssl methods``."""
    methods_table()
    return 0


def _method_names(text):
    """``--methods``: registered method names, comma-separated."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    return names


def _size(text):
    """``--size``: ``N`` or ``HEIGHT,WIDTH`` in pixels."""
    try:
        values = [int(value) for value in text.lower().replace("x", ",").split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HEIGHT,WIDTH in pixels, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def _positive_int(text):
    """``--chunk-size``, ``--k``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser():
    """The parser of every command; each sets ``run``, the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="skssl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reading = _reading_options()
    _add_fit(commands, reading)
    _add_model_commands(commands, reading)
    methods = commands.add_parser("methods", help="list every method with its default layer, epochs and paper")
    methods.set_defaults(run=_run_methods)
    _add_demo(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return its exit status.

    A failure the user can fix (a missing file, a bad value, a file that is not a
    model) is one line on stderr, ``skssl: error: ...``, and status 1; argparse's
    usage errors exit with status 2, Ctrl-C with 130, a closed pipe (``| head``) with 141.
    """
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("\nskssl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `skssl methods | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as a shell's own tools report it
    except (ValueError, TypeError, OSError) as exc:
        print(f"skssl: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc):
    """The message of ``exc`` on one line; an OSError's without its errno."""
    message = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return " ".join(message.split()) or type(exc).__name__
