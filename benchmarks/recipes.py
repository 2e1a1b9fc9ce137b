"""Recipe table: each method's frozen features against the baselines, tuned on validation.

    # screen settings on the proxy (5,000 pretext images), validation split
    python benchmarks/recipes.py --mnist ../shared/data/mnist_train.npz --proxy \\
        --methods simclr --set learning_rate=0.003 --set temperature=0.2
    # the defaults of every method, full budget, seeds 0-2, test split
    python benchmarks/recipes.py --mnist ../shared/data/mnist_train.npz --split test --seeds 0,1,2
    # digits (embedded), every method at its defaults, seeds 0-2
    python benchmarks/recipes.py --seeds 0,1,2

Splits (fixed, so that settings are tuned on validation images only):

- MNIST: pretext on training images 0-9,999 (the proxy: 0-4,999), labels 10,000-10,999,
  validation 40,000-49,999, test 50,000-59,999.
- digits: pretext on the first 1,297 images, labels the first 1,000 of them,
  validation 1,297-1,546, test 1,547-1,796.
- ``--colour``: 5,000 16x16 patches of sklearn's two photographs, labelled by image and
  quadrant (8 classes): pretext on patches 0-2,999, labels the first 1,000 of them,
  validation 3,000-3,999, test 4,000-4,999.

Each row is one method and one setting (``name=value`` pairs on top of its defaults):
pretext seconds, linear probe (standardised logistic regression) and kNN probe
(k=200, t=0.1, cosine) on 1,000 labels; beside them the same backbone with random
weights read at the same layer and pooling. ``--log FILE`` appends every row as JSON.
"""

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from skssl.cli import parse_setting
from skssl.datasets import load_digits_images, load_mnist, load_sample_patches
from skssl.evaluation import knn_probe, linear_probe, pixel_probe, random_twin
from skssl.registry import METHODS


def splits(mnist, proxy, split, colour=False):
    """(name, pretext images, (labelled images, labels), (scored images, labels))."""
    if colour:
        X, y = load_sample_patches(16, 5_000, random_state=0)
        scored = slice(3_000, 4_000) if split == "validation" else slice(4_000, 5_000)
        return "colour patches", X[:3_000], (X[:1_000], y[:1_000]), (X[scored], y[scored])
    if mnist:
        X, y = load_mnist(mnist)
        pretext = X[: 5_000 if proxy else 10_000]
        scored = slice(40_000, 50_000) if split == "validation" else slice(50_000, 60_000)
        return "MNIST", pretext, (X[10_000:11_000], y[10_000:11_000]), (X[scored], y[scored])
    X, y = load_digits_images()
    scored = slice(1297, 1547) if split == "validation" else slice(1547, 1797)
    return "digits", X[:1297], (X[:1000], y[:1000]), (X[scored], y[scored])


def score(featurizer, labelled, scored):
    return linear_probe(featurizer, *labelled, *scored), knn_probe(featurizer, *labelled, *scored)


def run(method, overrides, seed, data):
    """One fit of ``method`` with ``overrides``: its probes and its random-init twin's."""
    _, pretext, labelled, scored = data
    featurizer = METHODS[method].estimator(random_state=seed, **overrides)
    start = time.perf_counter()
    featurizer.fit(pretext)
    seconds = time.perf_counter() - start
    linear, knn = score(featurizer, labelled, scored)
    random = random_twin(featurizer, pretext, random_state=seed)
    random_linear, random_knn = score(random, labelled, scored)
    return {
        "method": method,
        "settings": overrides,
        "seed": seed,
        "seconds": seconds,
        "linear": linear,
        "knn": knn,
        "random_linear": random_linear,
        "random_knn": random_knn,
        "layer": featurizer.layer_,
        "features": int(featurizer._n_features_out),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", help="MNIST .npz or idx files (default: sklearn's digits)")
    parser.add_argument("--colour", action="store_true", help="16x16 patches of sklearn's two photographs")
    parser.add_argument("--proxy", action="store_true", help="5,000 pretext images instead of 10,000 (MNIST)")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--methods", help="comma-separated registry names (default: every grayscale method)")
    parser.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting on top of the defaults of every method listed; repeat it for more",
    )
    parser.add_argument("--seeds", default="0", help="comma-separated random states")
    parser.add_argument("--log", help="append each row to this JSON-lines file")
    args = parser.parse_args()
    data = splits(args.mnist, args.proxy, args.split, args.colour)
    name, pretext, labelled, scored = data
    seeds = [int(seed) for seed in args.seeds.split(",")]
    grayscale = pretext.ndim == 3 or pretext.shape[-1] not in (3, 4)
    default_methods = [m for m in METHODS if not (grayscale and m == "colorization")]
    methods = args.methods.split(",") if args.methods else default_methods
    overrides = dict(args.set)
    print(
        f"# {name}: {len(pretext)} pretext images, {len(labelled[0])} labels, {len(scored[0])} {args.split} "
        f"images; seeds {seeds}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}, {'CUDA' if torch.cuda.is_available() else 'CPU'}\n"
    )
    print(f"raw pixels: linear {pixel_probe(*labelled, *scored):.4f}\n")
    print("| method | settings | layer (dims) | pretext s | linear | kNN | random linear | random kNN |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for method in methods:
        rows = [run(method, overrides, seed, data) for seed in seeds]
        if args.log:
            with open(args.log, "a") as log:
                for row in rows:
                    log.write(json.dumps({"data": name, "split": args.split, **row}, default=str) + "\n")

        def mean(key, rows=rows):
            return statistics.fmean(row[key] for row in rows)

        described = ", ".join(f"{key}={value!r}" for key, value in overrides.items()) or "defaults"
        print(
            f"| {method} | {described} | {rows[0]['layer']} ({rows[0]['features']}) | {mean('seconds'):.0f} "
            f"| {mean('linear'):.4f} | {mean('knn'):.4f} | {mean('random_linear'):.4f} | {mean('random_knn'):.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
