"""Command line: ``skssl demo`` (also ``python -m skssl demo``)."""

import argparse
import sys
import time

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from . import DenoisingAEFeaturizer, RotNetFeaturizer, SimCLRFeaturizer
from .evaluation import linear_probe, pixel_probe

METHODS = {
    "rotnet": RotNetFeaturizer,
    "simclr": SimCLRFeaturizer,
    "denoising": DenoisingAEFeaturizer,
}


def demo(*, methods=tuple(METHODS), max_epochs=None, label_fraction=0.1, random_state=0, out=None):
    """Pretext-train each method on unlabeled digits, then probe with a few labels.

    Half of sklearn's digits are the unlabeled pretext set; ``label_fraction`` of all
    images (taken from that half) get their labels for a logistic-regression probe;
    the other half is the test set. Returns the table as a list of dicts.
    """
    from .datasets import load_digits_images

    out = sys.stdout if out is None else out
    X, y = load_digits_images()
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=random_state
    )
    n_labels = int(round(label_fraction * len(X)))
    X_labeled, _, y_labeled, _ = train_test_split(
        X_pool, y_pool, train_size=n_labels, stratify=y_pool, random_state=random_state
    )
    raw = pixel_probe(X_labeled, y_labeled, X_test, y_test)
    print(
        f"digits: {len(X_pool)} unlabeled images for pretext training, {n_labels} labels "
        f"for the linear probe, {len(X_test)} test images\n",
        file=out,
    )
    header = f"{'method':<24}{'pretext s':>10}{'probe acc':>11}{'random init':>13}{'raw pixels':>12}"
    print(header, file=out)
    print("-" * len(header), file=out)
    rows = []
    for name in methods:
        featurizer = METHODS[name](random_state=random_state)
        if max_epochs is not None:
            featurizer.set_params(max_epochs=max_epochs)
        start = time.perf_counter()
        featurizer.fit(X_pool)
        seconds = time.perf_counter() - start
        untrained = clone(featurizer).set_params(max_epochs=0).fit(X_pool)  # same initial weights
        row = {
            "method": type(featurizer).__name__,
            "pretext_seconds": seconds,
            "probe_accuracy": linear_probe(featurizer, X_labeled, y_labeled, X_test, y_test),
            "random_init_accuracy": linear_probe(untrained, X_labeled, y_labeled, X_test, y_test),
            "raw_pixel_accuracy": raw,
        }
        rows.append(row)
        print(
            f"{row['method']:<24}{seconds:>10.1f}{row['probe_accuracy']:>11.3f}"
            f"{row['random_init_accuracy']:>13.3f}{raw:>12.3f}",
            file=out,
            flush=True,
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="skssl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="pretext-train and probe every method on digits")
    demo_parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    demo_parser.add_argument("--max-epochs", type=int, default=None, help="override every method's default")
    demo_parser.add_argument("--label-fraction", type=float, default=0.1)
    demo_parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    np.set_printoptions(precision=3)
    demo(methods=methods, max_epochs=args.max_epochs, label_fraction=args.label_fraction, random_state=args.seed)
    return 0
