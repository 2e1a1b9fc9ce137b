"""One table for every featurizer: probe accuracy with 1,000 labels and pretext cost.

    python benchmarks/quality.py                      # digits (embedded)
    python benchmarks/quality.py --mnist ../shared/data/mnist_train.npz
    python benchmarks/quality.py --mnist ../shared/data/mnist_train.npz --max-epochs 10
    python benchmarks/quality.py --colour                # sklearn's sample photographs

Protocol (the field's): each featurizer, with its default settings, is pretext-trained
on unlabeled images; its frozen features then feed a linear probe (standardized
logistic regression) and a weighted kNN probe (k=200, t=0.1, cosine) fitted on 1,000
labeled images, scored on held-out test images. Baselines: the same backbone with
random frozen weights, the same backbone trained end to end on the 1,000 labels, and
raw pixels. Splits: digits: pretext on the first 1,297 images, labels from those
(the first 1,000), test on the last 500; MNIST (60,000 training images): pretext on
the first 10,000, labels on the next 1,000, test on images 50,000-54,999; the colour
set (16x16 patches of scikit-learn's two sample photographs, 8 classes: image x
quadrant): pretext on 3,000 patches, labels of the first 1,000, test on 1,000 others.
Methods that need colour images are left out of the grayscale tables.
"""

import argparse
import platform
import time

import torch

import skssl
from skssl import BaseFeaturizer, RandomFeaturizer, SupervisedClassifier
from skssl.datasets import load_digits_images, load_mnist, load_sample_patches
from skssl.evaluation import knn_probe, linear_probe, pixel_probe


def featurizer_classes():
    """Every public featurizer of skssl, baselines excluded."""
    classes = [getattr(skssl, name) for name in skssl.__all__]
    return [
        cls
        for cls in classes
        if isinstance(cls, type) and issubclass(cls, BaseFeaturizer) and cls not in (BaseFeaturizer, RandomFeaturizer)
    ]


NEEDS_COLOUR = {"ColorizationFeaturizer"}


def splits(mnist, colour=False):
    if colour:
        X, y = load_sample_patches(16, 4000, random_state=0)
        return "colour patches", X[:3000], (X[:1000], y[:1000]), (X[3000:], y[3000:])
    if mnist:
        X, y = load_mnist(mnist)
        return "MNIST", X[:10_000], (X[10_000:11_000], y[10_000:11_000]), (X[50_000:55_000], y[50_000:55_000])
    X, y = load_digits_images()
    return "digits", X[:1297], (X[:1000], y[:1000]), (X[1297:], y[1297:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", help="MNIST .npz or idx files")
    parser.add_argument("--colour", action="store_true", help="the colour patch set instead of digits")
    parser.add_argument("--methods", help="comma-separated class names (default: all)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, help="one pretext budget for every method (default: each one's own)")
    args = parser.parse_args()
    name, X_unlabeled, (X_train, y_train), (X_test, y_test) = splits(args.mnist, args.colour)
    seed = args.random_state
    print(
        f"# {name}: {len(X_unlabeled)} unlabeled pretext images, {len(X_train)} labels, "
        f"{len(X_test)} test images; defaults"
        f"{'' if args.max_epochs is None else f' but max_epochs={args.max_epochs}'}, random_state={seed}; "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.machine()}, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU'}\n"
    )
    print("| method | pretext s | linear probe | kNN probe |")
    print("| --- | ---: | ---: | ---: |")

    def row(label, seconds, linear, knn):
        seconds = "-" if seconds is None else f"{seconds:.1f}"
        knn = "-" if knn is None else f"{knn:.4f}"
        print(f"| {label} | {seconds} | {linear:.4f} | {knn} |", flush=True)

    selected = featurizer_classes()
    if not args.colour:
        selected = [cls for cls in selected if cls.__name__ not in NEEDS_COLOUR]
    if args.methods:
        wanted = set(args.methods.split(","))
        selected = [cls for cls in selected if cls.__name__ in wanted]
    for cls in selected:
        start = time.perf_counter()
        budget = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
        featurizer = cls(random_state=seed, **budget).fit(X_unlabeled)
        seconds = time.perf_counter() - start
        row(
            cls.__name__,
            seconds,
            linear_probe(featurizer, X_train, y_train, X_test, y_test),
            knn_probe(featurizer, X_train, y_train, X_test, y_test),
        )
    random = RandomFeaturizer(random_state=seed).fit(X_unlabeled)
    row(
        "random-init small_cnn (baseline)",
        None,
        linear_probe(random, X_train, y_train, X_test, y_test),
        knn_probe(random, X_train, y_train, X_test, y_test),
    )
    start = time.perf_counter()
    supervised = SupervisedClassifier(random_state=seed).fit(X_train, y_train)
    row(
        "supervised small_cnn on the labels (baseline)",
        time.perf_counter() - start,
        supervised.score(X_test, y_test),
        None,
    )
    row("raw pixels (baseline)", None, pixel_probe(X_train, y_train, X_test, y_test), None)


if __name__ == "__main__":
    main()
