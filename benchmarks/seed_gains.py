"""How much a featurizer's frozen features beat its own random-init network, seed by seed.

    python benchmarks/seed_gains.py --methods Jigsaw,CPC --seeds 0-9
    python benchmarks/seed_gains.py --methods RelativePosition --max-epochs 60

The split of ``tests/test_learning.py``: pretext on the first 1,000 digits, a linear
probe (standardised logistic regression) on the first 300 labels, test on the last 797.
The baseline is the same network at the same seed with no training
(``clone(...).set_params(max_epochs=0)``). Gains vary from seed to seed, so a margin
for a test is best read off many seeds; the table prints each, their mean and how many
were negative.
"""

import argparse
import statistics
import time

from sklearn.base import clone
from sklearn.datasets import load_digits

import skssl
from skssl.evaluation import linear_probe


def seeds(text):
    """``"0-9"`` or ``"0,3,5"`` as a list of ints."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


def gains(cls, seed_list, max_epochs):
    """Per seed: (probe accuracy, random-init accuracy, pretext seconds)."""
    X, y = load_digits(return_X_y=True)
    rows = []
    for seed in seed_list:
        params = dict(device="cpu", random_state=seed)
        if max_epochs is not None:
            params["max_epochs"] = max_epochs
        start = time.perf_counter()
        featurizer = cls(**params).fit(X[:1000])
        seconds = time.perf_counter() - start
        untrained = clone(featurizer).set_params(max_epochs=0).fit(X[:1000])
        accuracy = linear_probe(featurizer, X[:300], y[:300], X[1000:], y[1000:])
        baseline = linear_probe(untrained, X[:300], y[:300], X[1000:], y[1000:])
        rows.append((accuracy, baseline, seconds))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", required=True, help="comma-separated class names, with or without 'Featurizer'")
    parser.add_argument("--seeds", default="0-9", type=seeds, help="'0-9' or '0,1,2' (default: 0-9)")
    parser.add_argument("--max-epochs", type=int, help="default: each method's own")
    args = parser.parse_args()
    print("| method | epochs | gain per seed | mean gain | negative | pretext s per fit |")
    print("| --- | ---: | --- | ---: | ---: | ---: |", flush=True)
    for name in args.methods.split(","):
        cls = getattr(skssl, name if name.endswith("Featurizer") else name + "Featurizer")
        rows = gains(cls, args.seeds, args.max_epochs)
        per_seed = [accuracy - baseline for accuracy, baseline, _ in rows]
        epochs = args.max_epochs or cls().max_epochs
        print(
            f"| {cls.__name__} | {epochs} | {' '.join(f'{g:+.3f}' for g in per_seed)} "
            f"| {statistics.mean(per_seed):+.3f} | {sum(g < 0 for g in per_seed)} of {len(per_seed)} "
            f"| {statistics.median(s for *_, s in rows):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
