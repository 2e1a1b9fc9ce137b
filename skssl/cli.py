"""Command line: ``skssl demo`` (also ``python -m skssl demo``)."""

import argparse
import sys
import time

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from . import FineTunedClassifier
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
    """Print every registered method: its name, estimator, default layer and epochs, paper."""
    rows = [
        (name, method.estimator.__name__, method.default_layer, str(method.default_epochs), method.paper)
        for name, method in METHODS.items()
    ]
    header = ("name", "estimator", "layer", "epochs", "paper")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)) + "  " + row[-1], file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skssl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("methods", help="list every method with its default layer, epochs and paper")
    demo_parser = commands.add_parser(
        "demo", help="pretext-train each method on digits, then fine-tune it on 10%% of the labels"
    )
    demo_parser.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="comma-separated, of: " + ", ".join(METHODS)
    )
    demo_parser.add_argument("--max-epochs", type=int, default=None, help="override every method's pretext epochs")
    demo_parser.add_argument("--label-fraction", type=float, default=0.1)
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--quiet", action="store_true", help="no progress bars, only the table")
    args = parser.parse_args(argv)
    if args.command == "methods":
        methods_table()
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    demo(
        methods=methods,
        max_epochs=args.max_epochs,
        label_fraction=args.label_fraction,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    return 0
