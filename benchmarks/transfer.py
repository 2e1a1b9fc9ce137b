"""Transfer to a few labels: frozen probe, fine-tuning, the semi-supervised stages, and
every baseline, per method and seed.

    python benchmarks/transfer.py --mnist ../shared/data/mnist_train.npz --methods SimCLR
    python benchmarks/transfer.py --mnist ../shared/data/mnist_train.npz --split validation ...
    python benchmarks/transfer.py --digits --methods RotNet,DenoisingAE,ContextEncoder

Splits (tune on ``--split validation``, report ``--split test``, never the reverse):

- MNIST: pretext and unlabeled images 0-9,999, labels 10,000-10,999, validation
  40,000-49,999, test 50,000-59,999. The classifiers fit on images 0-10,999 with
  ``y == -1`` on the first 10,000.
- digits: the demo's split (``skssl demo``): half the digits are the training pool,
  10 % of all digits (180) labeled among them, the other half the test set. For
  ``--split validation``, 300 of the pool's unlabeled images are held out (never fitted
  on) and scored instead.

Rows per method (each method pretext-trains once per seed; every classifier reuses that
fit through ``FrozenEstimator``): the frozen linear probe on the labels; the network
fine-tuned on the labels (``semi_supervised=None``); fine-tuned then each semi-supervised
stage; S4L; the same network from its random initial weights (the featurizer with
``max_epochs=0``) trained the same way on the labels alone and with the self-training
stage; ``SupervisedClassifier(augment=True)`` with the same backbone and epochs; and, on raw pixels,
logistic regression, scikit-learn's ``SelfTrainingClassifier``
around it and ``LabelSpreading(kernel="knn")``. Seconds are the wall-clock of each fit
(pretext apart), on whatever the machine was doing.
"""

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

import skssl
from skssl import FineTunedClassifier, SupervisedClassifier
from skssl.datasets import load_digits_images, load_mnist
from skssl.evaluation import linear_probe

ROWS = (
    "frozen",
    "fine_tuned",
    "self_training",
    "distill",
    "s4l",
    "supervised",
    "supervised_classifier",
    "supervised_self_training",
    "pixels",
    "self_training_pixels",
    "label_spreading_pixels",
)
PRETEXT_ROWS = ("frozen", "fine_tuned", "self_training", "distill")


def mnist_split(path, split):
    X, y = load_mnist(path)
    y = y.astype(np.int64)
    y_fit = np.full(11_000, -1)
    y_fit[10_000:] = y[10_000:11_000]
    held_out = slice(40_000, 50_000) if split == "validation" else slice(50_000, 60_000)
    return X[:11_000], y_fit, X[held_out], y[held_out]


def digits_split(seed, split):
    X, y = load_digits_images()
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.5, stratify=y, random_state=seed)
    labeled, _ = train_test_split(np.arange(len(X_pool)), train_size=180, stratify=y_pool, random_state=seed)
    y_fit = np.full(len(X_pool), -1)
    y_fit[labeled] = y_pool[labeled]
    if split == "test":
        return X_pool, y_fit, X_test, y_test
    unlabeled = np.flatnonzero(y_fit == -1)
    held_out, _ = train_test_split(unlabeled, train_size=300, stratify=y_pool[unlabeled], random_state=seed)
    keep = np.setdiff1d(np.arange(len(X_pool)), held_out)
    return X_pool[keep], y_fit[keep], X_pool[held_out], y_pool[held_out]


def featurizer_class(name):
    for candidate in (name, name + "Featurizer"):
        if hasattr(skssl, candidate):
            return getattr(skssl, candidate)
    raise SystemExit(f"unknown method {name!r}")


def run_method(cls, featurizer_params, classifier_params, rows, X, y, X_test, y_test, seed):
    """``{row: (accuracy, seconds)}`` for one method and seed."""
    labeled = y >= 0
    results = {}
    featurizer = cls(random_state=seed, **featurizer_params)
    if any(row in rows for row in PRETEXT_ROWS):
        start = time.perf_counter()
        featurizer.fit(X)
        results["pretext"] = (float("nan"), time.perf_counter() - start)
    untrained = clone(featurizer).set_params(max_epochs=0).fit(X)
    tuned = {"random_state": seed, **classifier_params}
    supervised_params = {
        name: value
        for name, value in tuned.items()
        if name in ("max_epochs", "batch_size", "learning_rate", "weight_decay", "random_state")
    }

    def timed(row, fit_and_score):
        if row in rows:
            start = time.perf_counter()
            accuracy = fit_and_score()
            results[row] = (float(accuracy), time.perf_counter() - start)
            print(f"    {row}: {accuracy:.4f} ({results[row][1]:.0f} s)", flush=True)

    def classifier(base, **params):
        return FineTunedClassifier(FrozenEstimator(base), **{**tuned, **params}).fit(X, y).score(X_test, y_test)

    timed("frozen", lambda: linear_probe(featurizer, X[labeled], y[labeled], X_test, y_test))
    timed("fine_tuned", lambda: classifier(featurizer, semi_supervised=None))
    timed("self_training", lambda: classifier(featurizer, semi_supervised="self_training"))
    timed("distill", lambda: classifier(featurizer, semi_supervised="distill"))
    timed(
        "s4l",
        lambda: (
            FineTunedClassifier(clone(featurizer), **{**tuned, "semi_supervised": "s4l"})
            .fit(X, y)
            .score(X_test, y_test)
        ),
    )
    timed("supervised", lambda: classifier(untrained, semi_supervised=None))
    timed(
        "supervised_classifier",
        lambda: (
            SupervisedClassifier(
                backbone=featurizer.backbone,
                backbone_kwargs=featurizer.backbone_kwargs,
                augment=True,
                **{"max_epochs": 100, **supervised_params},
            )
            .fit(X[labeled], y[labeled])
            .score(X_test, y_test)
        ),
    )
    timed("supervised_self_training", lambda: classifier(untrained, semi_supervised="self_training"))
    return results


def run_pixels(rows, X, y, X_test, y_test):
    flat, flat_test = X.reshape(len(X), -1).astype(np.float64), X_test.reshape(len(X_test), -1).astype(np.float64)
    scale = flat.max() or 1.0
    labeled = y >= 0
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    fits = {
        "pixels": lambda: clone(probe).fit(flat[labeled], y[labeled]).score(flat_test, y_test),
        "self_training_pixels": lambda: SelfTrainingClassifier(clone(probe)).fit(flat, y).score(flat_test, y_test),
        "label_spreading_pixels": lambda: (
            LabelSpreading(kernel="knn").fit(flat / scale, y).score(flat_test / scale, y_test)
        ),
    }
    results = {}
    for row, fit_and_score in fits.items():
        if row in rows:
            start = time.perf_counter()
            results[row] = (float(fit_and_score()), time.perf_counter() - start)
            print(f"    {row}: {results[row][0]:.4f} ({results[row][1]:.0f} s)", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", help="MNIST .npz or idx files")
    parser.add_argument("--digits", action="store_true", help="the demo's digits split")
    parser.add_argument("--methods", default="SimCLR", help="comma-separated class names")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--split", choices=("validation", "test"), default="test")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated of: " + ", ".join(ROWS))
    parser.add_argument(
        "--featurizer-params", default="{}", help='JSON, e.g. \'{"backbone_kwargs": {"widths": [32, 64, 128]}}\''
    )
    parser.add_argument("--classifier-params", default="{}", help="JSON FineTunedClassifier parameters")
    args = parser.parse_args()
    if not (args.mnist or args.digits):
        parser.error("pass --mnist PATH or --digits")
    rows = [row.strip() for row in args.rows.split(",")]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    featurizer_params, classifier_params = json.loads(args.featurizer_params), json.loads(args.classifier_params)
    print(
        f"# {'MNIST' if args.mnist else 'digits'}, {args.split} split, seeds {seeds}; featurizer "
        f"{featurizer_params or 'defaults'}, classifier {classifier_params or 'defaults'}; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU'}\n",
        flush=True,
    )
    table = {}  # (method, row) -> [(accuracy, seconds) per seed]
    for seed in seeds:
        X, y, X_test, y_test = mnist_split(args.mnist, args.split) if args.mnist else digits_split(seed, args.split)
        print(
            f"seed {seed}: {int((y >= 0).sum())} labels, {len(X)} training images, {len(X_test)} held out", flush=True
        )
        for name, result in run_pixels(rows, X, y, X_test, y_test).items():
            table.setdefault(("raw pixels", name), []).append(result)
        for method in args.methods.split(","):
            cls = featurizer_class(method.strip())
            print(f"  {cls.__name__}", flush=True)
            for name, result in run_method(
                cls, featurizer_params, classifier_params, rows, X, y, X_test, y_test, seed
            ).items():
                table.setdefault((cls.__name__, name), []).append(result)
    print("\n| method | row | mean accuracy | per seed | mean s |")
    print("| --- | --- | ---: | --- | ---: |")
    for (method, row), results in table.items():
        accuracies = [accuracy for accuracy, _ in results]
        seconds = statistics.mean(s for _, s in results)
        mean = "-" if row == "pretext" else f"{statistics.mean(accuracies):.4f}"
        per_seed = "-" if row == "pretext" else " ".join(f"{a:.4f}" for a in accuracies)
        print(f"| {method} | {row} | {mean} | {per_seed} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
