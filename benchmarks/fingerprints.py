"""Fingerprints of every public estimator: its output at seed 0 on a fixed small input.

A refactor that should change no behaviour records the fingerprints before and checks
them after: on the CPU the outputs must be bit-identical.

    python benchmarks/fingerprints.py --record before.npz
    python benchmarks/fingerprints.py --compare before.npz

Each featurizer is fitted for two epochs (batch 16) and transforms the images; each
classifier is fitted on half-labelled images and gives ``predict_proba``.
"""

import argparse
import hashlib
import sys
import warnings

import numpy as np
import torch
from sklearn.base import is_classifier

import skssl
from skssl.datasets import load_digits_images, load_sample_patches

SHORT = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
COLOUR_METHODS = {"ColorizationFeaturizer", "SplitBrainFeaturizer"}


def estimators():
    """``(name, estimator, images)`` for every public estimator, at short settings."""
    digits = load_digits_images(n_samples=96)[0]
    colour = load_sample_patches(patch_size=16, n_patches=64, random_state=0)[0]
    for name in skssl.__all__:
        cls = getattr(skssl, name)
        if not isinstance(cls, type) or not hasattr(cls, "fit") or name in ("BaseFeaturizer", "ImageFolderLoader"):
            continue
        images = colour if name in COLOUR_METHODS else digits
        if name == "FineTunedClassifier":
            for semi in (None, "self_training", "distill", "s4l"):
                yield (
                    f"{name}[{semi}]",
                    cls(skssl.SimCLRFeaturizer(**SHORT), semi_supervised=semi, semi_supervised_epochs=2, **SHORT),
                    images,
                )
        elif name == "LabeledOnly":
            yield name, cls(skssl.SupervisedClassifier(**SHORT)), images
        elif name == "RandomFeaturizer":
            yield name, cls(device="cpu", random_state=0), images
        else:
            yield name, cls(**SHORT), images
    # a second fit that trains the fitted weights further (DeepCluster clusters afresh)
    yield "DeepClusterFeaturizer[warm_start]", skssl.DeepClusterFeaturizer(**SHORT, warm_start=True), digits


def outputs():
    """``{name: ndarray}`` of every estimator's output."""
    labels = load_digits_images(n_samples=96)[1].copy()
    labels[1::2] = -1
    result = {}
    for name, estimator, images in estimators():
        torch.manual_seed(1234)  # a fit that read the global RNG would show up as a change
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if is_classifier(estimator):
                # SupervisedClassifier learns from labelled rows only; the others take -1
                keep = labels != -1 if name == "SupervisedClassifier" else slice(None)
                result[name] = estimator.fit(images[keep], labels[keep]).predict_proba(images)
            else:
                if estimator.get_params().get("warm_start"):
                    estimator.fit(images[::-1].copy())
                result[name] = estimator.fit(images).transform(images)
        print(f"{name:<40} {hashlib.sha256(result[name].tobytes()).hexdigest()[:16]}", flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", metavar="FILE", help="write the fingerprints to FILE (.npz)")
    group.add_argument("--compare", metavar="FILE", help="compare with the fingerprints in FILE")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same reduction order in every run
    now = outputs()
    if args.record:
        np.savez(args.record, **now)
        return 0
    before = dict(np.load(args.compare))
    changed = 0
    print(f"\n{'estimator':<40} {'equal':>6} {'max |diff|':>12}")
    for name in sorted(set(before) | set(now)):
        if name not in before or name not in now:
            print(f"{name:<40} {'missing':>6}")
            changed += 1
            continue
        same = before[name].shape == now[name].shape and np.array_equal(before[name], now[name])
        diff = float(np.abs(before[name] - now[name]).max()) if before[name].shape == now[name].shape else float("inf")
        changed += not same
        print(f"{name:<40} {str(same):>6} {diff:>12.3g}")
    print(f"\n{len(now) - changed} of {len(now)} bit-identical")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
