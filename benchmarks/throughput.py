"""Pretext throughput of every featurizer against the model-only limit, and transform
throughput against bare inference of the cut backbone.

    python benchmarks/throughput.py [--mnist ../shared/data/mnist_train.npz] [--repeats 3]
        [--keras-python ENV/bin/python] [--lightly-python ENV/bin/python]

For each method: *pretext* images/s is what ``fit`` achieves (network inputs per
second, e.g. RotNet's four rotations count four; timed from ``history_`` after a
warm-up epoch); *model-only* is the same task's forward+backward+AdamW step on
views prepared once beforehand, so the ratio is the share left after the data path
(sampling, scaling, augmentation, view construction). The two are timed A/B
interleaved and the medians of ``--repeats`` runs are reported.
"""

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

from skssl import DenoisingAEFeaturizer, RotNetFeaturizer, SimCLRFeaturizer
from skssl._data import check_images, to_tensor
from skssl._training import to_unit
from skssl.backbones import pool


def load_images(mnist, n_images):
    if mnist and Path(mnist).exists():
        return np.load(mnist)["X"][:n_images], "MNIST 28x28"
    from sklearn.datasets import load_digits

    X = load_digits().data
    return np.tile(X, (max(1, n_images // len(X)), 1))[:n_images], "digits 8x8 (tiled)"


def pretext_rate(featurizer, X, epochs):
    """Network inputs per second over epochs 2.. of a fit."""
    fitted = clone(featurizer).set_params(max_epochs=epochs).fit(X)
    seconds = sum(epoch["seconds"] for epoch in fitted.history_[1:])
    return fitted, _inputs_per_epoch(fitted, X) * (epochs - 1) / seconds


def _inputs_per_epoch(fitted, X):
    steps = len(X) // fitted.batch_size
    batch = to_unit(to_tensor(check_images(fitted, X[: fitted.batch_size], reset=False), "cpu"), fitted.value_range_)
    inputs, _ = fitted.task_.views(batch, torch.Generator().manual_seed(0))
    return steps * len(inputs)


def model_only_rate(fitted, X, steps):
    """Forward+backward+step of the same task on views prepared once."""
    task = fitted.task_
    task.requires_grad_(True).train()
    batch = to_unit(to_tensor(check_images(fitted, X[: fitted.batch_size], reset=False), "cpu"), fitted.value_range_)
    inputs, targets = task.views(batch, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    for step in range(steps + 3):
        if step == 3:
            start = time.perf_counter()
        loss = task.loss(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    rate = steps * len(inputs) / (time.perf_counter() - start)
    task.requires_grad_(False).eval()
    return rate


def transform_rates(fitted, X):
    """``transform`` images/s and bare inference of the cut backbone on one tensor."""
    fitted.transform(X[:1024])  # warm-up
    start = time.perf_counter()
    fitted.transform(X)
    transform_rate = len(X) / (time.perf_counter() - start)
    images = to_unit(to_tensor(check_images(fitted, X, reset=False), "cpu"), fitted.value_range_)
    backbone = fitted.task_.backbone
    with torch.inference_mode():
        backbone(images[:512], upto=fitted.layer_)  # warm-up
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), 512):
            pool(backbone(images[i : i + 512], upto=fitted.layer_), fitted.pool_)
    return transform_rate, len(X) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist", default=str(Path(__file__).parents[2] / "shared" / "data" / "mnist_train.npz"))
    parser.add_argument("--n-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keras-python", help="interpreter of an environment with tensorflow-cpu")
    parser.add_argument("--lightly-python", help="interpreter of an environment with lightly")
    parser.add_argument("--peers-only", action="store_true", help="skip the per-method table")
    args = parser.parse_args()
    X, data_name = load_images(args.mnist, args.n_images)
    featurizers = [
        RotNetFeaturizer(batch_size=48, random_state=0, device="cpu"),
        SimCLRFeaturizer(batch_size=256, random_state=0, device="cpu"),
        DenoisingAEFeaturizer(batch_size=64, random_state=0, device="cpu"),
    ]
    print(
        f"# {data_name}, {len(X)} images, {args.epochs} epochs (first is warm-up), "
        f"medians of {args.repeats}; torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {platform.processor() or platform.machine()}\n"
    )
    header = "| method | backbone | device | pretext inputs/s | model-only inputs/s | ratio | transform img/s | bare inference img/s | ratio |"
    print(header)
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for featurizer in [] if args.peers_only else featurizers:
        pretext, model, transform, bare = [], [], [], []
        for _ in range(args.repeats):  # A/B interleaved
            fitted, rate = pretext_rate(featurizer, X, args.epochs)
            pretext.append(rate)
            model.append(model_only_rate(fitted, X, steps=30))
            t_rate, b_rate = transform_rates(fitted, X)
            transform.append(t_rate)
            bare.append(b_rate)
        p, m, t, b = (statistics.median(v) for v in (pretext, model, transform, bare))
        print(
            f"| {type(featurizer).__name__} | {featurizer.backbone} | cpu | {p:,.0f} | {m:,.0f} | "
            f"{p / m:.2f} | {t:,.0f} | {b:,.0f} | {t / b:.2f} |",
            flush=True,
        )
    if args.keras_python or args.lightly_python:
        compare_with_peers(args, X)


def peer_rate(python, peer, mnist, epochs):
    """Run ``peers.py`` under another environment's interpreter; its images/s."""
    script = Path(__file__).with_name("peers.py")
    output = subprocess.run(
        [python, str(script), peer, "--mnist", mnist, "--epochs", str(epochs)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def compare_with_peers(args, X):
    """RotNet against the Keras lab and SimCLR against lightly, A/B interleaved."""
    pairs = [
        ("keras", args.keras_python, RotNetFeaturizer(batch_size=48, random_state=0, device="cpu"), 1),
        ("lightly", args.lightly_python, SimCLRFeaturizer(batch_size=256, random_state=0, device="cpu"), 2),
    ]
    print("\n| skssl | peer | skssl images/s | peer images/s | unit | ratio |")
    print("| --- | --- | ---: | ---: | --- | ---: |")
    for peer, python, featurizer, inputs_per_image in pairs:
        if not python:
            continue
        ours, theirs = [], []
        for _ in range(args.repeats):
            result = peer_rate(python, peer, args.mnist, args.epochs)
            theirs.append(result["images_per_second"])
            ours.append(pretext_rate(featurizer, X[:10000], args.epochs)[1] / inputs_per_image)
        o, t = statistics.median(ours), statistics.median(theirs)
        print(
            f"| {type(featurizer).__name__} | {result['version']} | {o:,.0f} | {t:,.0f} | "
            f"{result['unit']} | {o / t:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
