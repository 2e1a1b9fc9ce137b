"""Pretext throughput of every featurizer against the model-only limit, and transform
throughput against bare inference of the cut backbone.

    python benchmarks/throughput.py [--methods RotNet,SimCLR] [--mnist ../shared/data/mnist_train.npz]
        [--n-images 10000] [--repeats 3] [--device cpu]
        [--keras-python ENV/bin/python] [--lightly-python ENV/bin/python] [--epochs 3]

Every featurizer that ``skssl`` exports and that trains (it has ``max_epochs``) runs
with its defaults and ``random_state=0``, each in its own process; ``--methods`` picks
some by class name (with or without ``Featurizer``) or by dotted path
(``skssl.methods.jigsaw.JigsawFeaturizer``, for one not exported yet). Colorization,
which needs colour, runs on 16x16 RGB patches of sklearn's sample photographs
(``skssl.datasets.load_sample_patches``); a method that fails gets a row saying why.

After a warm-up epoch, each of ``--repeats`` rounds trains one more epoch of ``fit``
(``warm_start``), then times the pretext step and the model-only step alternately,
step by step, so that whatever else runs on a shared machine slows both alike, then
``transform`` and bare inference. Medians over the rounds are reported; the ratios are
medians of the per-round ratios. Columns:

- *fit img/s*: source images per second of a ``fit`` epoch, from ``history_``
  (views, rotations and tiles come on top), per-epoch work included;
- *pretext img/s*: the loop's step as ``fit`` runs it: a random batch of the raw
  training set, scaled to [0, 1], the task's views, forward, backward, AdamW step and
  ``after_step`` (momentum updates);
- *model-only img/s*: the same step on views and targets prepared once beforehand;
- *ratio*: pretext / model-only, the share of the step left after the data path
  (sampling, scaling, augmentation, view construction); the issue's target is >= 0.85.
  Per-epoch work (DeepCluster's clustering) shows in *fit img/s* only;
- *transform img/s* and *bare img/s*: ``transform`` on the whole set (validation,
  scaling, streaming) and the cut backbone alone on one prepared float tensor;
  target ratio >= 0.9;
- *fit peak MB*: peak resident memory during the warm-up ``fit`` above the process's
  memory just before it (the training set's copy included); on CUDA, the peak of
  ``torch.cuda.max_memory_allocated``.

With ``--keras-python`` / ``--lightly-python`` (interpreters of environments with
``tensorflow-cpu`` / ``lightly``, see ``peers.py``), the classic Keras rotation lab and
lightly's SimCLR run against skssl's RotNet and SimCLR, fresh fits of ``--epochs``
epochs on both sides (the first a warm-up), alternated ``--repeats`` times.
"""

import argparse
import datetime
import importlib
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

import skssl
from skssl._data import check_images, to_tensor
from skssl._training import autocast, take, to_unit
from skssl.backbones import pool
from skssl.base import BaseFeaturizer
from skssl.datasets import load_sample_patches


def load_images(mnist, n_images):
    if mnist and Path(mnist).exists():
        return np.load(mnist)["X"][:n_images], "MNIST 28x28"
    from sklearn.datasets import load_digits

    X = load_digits().data
    return np.tile(X, (max(1, n_images // len(X)), 1))[:n_images], "digits 8x8 (tiled)"


def pretrained_featurizers():
    """Every exported featurizer class that pretext-trains (RandomFeaturizer does not)."""
    classes = [getattr(skssl, name) for name in skssl.__all__]
    return [
        cls
        for cls in classes
        if inspect.isclass(cls)
        and issubclass(cls, BaseFeaturizer)
        and cls is not BaseFeaturizer
        and "max_epochs" in inspect.signature(cls).parameters
    ]


def select(classes, methods):
    """The classes named in ``methods``: exported names, with or without ``Featurizer``,
    or dotted paths (``skssl.methods.jigsaw.JigsawFeaturizer``) of ones not exported yet."""
    if not methods:
        return classes
    by_name = {}
    for cls in classes:
        by_name[cls.__name__.lower()] = by_name[cls.__name__.lower().removesuffix("featurizer")] = cls
    chosen = []
    for name in (m.strip() for m in methods.split(",")):
        if "." in name:
            module, _, attribute = name.rpartition(".")
            chosen.append(getattr(importlib.import_module(module), attribute))
        elif name.lower() in by_name:
            chosen.append(by_name[name.lower()])
        else:
            raise SystemExit(f"unknown method {name!r}; choose from {[c.__name__ for c in classes]}")
    return chosen


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of a block above the memory at its start: resident set on the CPU
    (the kernel's high-water mark, reset on entry), allocated tensors on CUDA."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            self.start = _resident_bytes("VmRSS")
            try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass  # then the process's lifetime peak is used
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _resident_bytes("VmHWM")
        self.mb = max(0, peak - self.start) / 2**20


def _resident_bytes(field):
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process; elsewhere than Linux, the
    lifetime peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB elsewhere


def pretext_rate(featurizer, X, epochs):
    """``(fitted, source images/s)`` over epochs 2.. of a fit."""
    fitted = clone(featurizer).set_params(max_epochs=epochs).fit(X)
    history = fitted.history_[1:]
    batch_size = min(fitted.batch_size, len(X))
    return fitted, (len(X) // batch_size) * batch_size * len(history) / sum(h["seconds"] for h in history)


def _unit_batch(fitted, X, device):
    return to_unit(to_tensor(check_images(fitted, X, reset=False), device), fitted.value_range_)


def _trainable_flags(fitted):
    """Which parameters the optimizer moves: ``fit`` freezes all of them at the end, so
    read them off a fresh task (momentum targets stay frozen)."""
    try:
        return {name: p.requires_grad for name, p in fitted.untrained_task().named_parameters()}
    except Exception:  # a method without a rebuildable task: train everything
        return {}


def step_rates(fitted, X, steps, device):
    """Source images/s of the pretext step and of the model-only step, alternated.

    The pretext step is the loop's: a random batch of the training set, scaled to
    [0, 1], views built by the task, forward, backward, AdamW step, ``after_step``. The
    model-only step is the same on views and targets prepared once beforehand. The two
    alternate step by step, so that whatever else runs on the machine slows both alike.
    """
    task = fitted.task_
    batch_size = min(fitted.batch_size, len(X))
    generator = torch.Generator(device).manual_seed(0)
    images = to_tensor(check_images(fitted, X, reset=False), device)  # as in fit: raw, on the device
    # the loop's per-image targets: pseudo-labels, colour targets, or None
    loop_targets = task.start_training(images, fitted.value_range_, generator)
    epoch_targets = task.start_epoch(images, fitted.value_range_, generator)
    loop_targets = epoch_targets if epoch_targets is not None else loop_targets
    batch = to_unit(images[:batch_size], fitted.value_range_)
    inputs, targets = task.views(batch, generator, None if loop_targets is None else loop_targets[:batch_size])
    flags = _trainable_flags(fitted)
    for name, parameter in task.named_parameters():
        parameter.requires_grad_(flags.get(name, True))
    task.train()
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-5, fused=device.type in ("cpu", "cuda"))  # as fit's
    mixed = autocast(device, fitted.precision)

    epochs = -(-(steps + 2) * batch_size // len(images))
    order = torch.cat(
        [torch.randperm(len(images), generator=generator, device=generator.device) for _ in range(epochs)]
    )

    def pretext_loss(step):  # the loop's step
        indices = order[step * batch_size : (step + 1) * batch_size]
        batch = to_unit(take(images, indices, device), fitted.value_range_)
        if loop_targets is None:
            return task(batch, generator)
        return task(batch, generator, take(loop_targets, indices, device))

    def model_loss(step):
        return task.loss(inputs, targets)

    losses = {"pretext": pretext_loss, "model": model_loss}
    seconds = dict.fromkeys(losses, 0.0)
    for step in range(steps + 2):  # two warm-up steps
        for name, compute_loss in losses.items():
            _sync(device)
            start = time.perf_counter()
            with mixed:
                loss = compute_loss(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            task.after_step(0.5)
            _sync(device)
            if step >= 2:
                seconds[name] += time.perf_counter() - start
    task.requires_grad_(False).eval()
    return steps * batch_size / seconds["pretext"], steps * batch_size / seconds["model"]


def inputs_per_image(fitted, X, device):
    """Network inputs per source image of the task's views (rotations: 4)."""
    batch = to_unit(to_tensor(check_images(fitted, X[:8], reset=False), device), fitted.value_range_)
    inputs, _ = fitted.task_.views(batch, torch.Generator(device).manual_seed(0))
    return len(inputs) / len(batch)


def transform_rates(fitted, X, device, chunk=2048):
    """``transform`` images/s and bare inference of the cut backbone on prepared float
    tensors, alternated chunk by chunk of ``X`` (each ``transform`` call validates,
    scales and streams its chunk in batches of 512, as it would the whole set)."""
    images = _unit_batch(fitted, X, device)
    backbone = fitted.task_.backbone

    def bare(rows):
        with torch.inference_mode(), autocast(device, fitted.precision):
            for i in range(0, len(rows), 512):
                pool(backbone(rows[i : i + 512], upto=fitted.layer_), fitted.pool_).float().cpu()

    fitted.transform(X[:512])  # warm-up
    bare(images[:512])
    seconds = {"transform": 0.0, "bare": 0.0}
    for i in range(0, len(X), chunk):
        for name, run in (
            ("transform", lambda i=i: fitted.transform(X[i : i + chunk])),
            ("bare", lambda i=i: bare(images[i : i + chunk])),
        ):
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            seconds[name] += time.perf_counter() - start
    return len(X) / seconds["transform"], len(X) / seconds["bare"]


def benchmark(cls, X, args, device):
    """One table row's numbers. After a warm-up epoch (whose peak memory is recorded),
    each of ``args.repeats`` rounds trains one more epoch (``warm_start``), times the
    pretext and model-only steps alternately, then ``transform`` and bare inference.
    Medians over the rounds are reported; the ratios are medians of per-round ratios."""
    featurizer = cls(random_state=0, device=str(device), max_epochs=1, warm_start=True)
    with PeakMemory(device) as memory:
        fitted = featurizer.fit(X)
    batch_size = min(fitted.batch_size, len(X))
    steps = args.steps or len(X) // batch_size
    runs = {"fit": [], "pretext": [], "model": [], "transform": [], "bare": []}
    for _ in range(args.repeats):
        fitted.fit(X)  # one more epoch
        runs["fit"].append((len(X) // batch_size) * batch_size / fitted.history_[-1]["seconds"])
        pretext, model = step_rates(fitted, X, steps, device)
        runs["pretext"].append(pretext)
        runs["model"].append(model)
        transform, bare = transform_rates(fitted, X, device)
        runs["transform"].append(transform)
        runs["bare"].append(bare)
    row = {key: statistics.median(values) for key, values in runs.items()}
    row["ratio"] = statistics.median(p / m for p, m in zip(runs["pretext"], runs["model"]))
    row["transform_ratio"] = statistics.median(t / b for t, b in zip(runs["transform"], runs["bare"]))
    return {**row, "peak_mb": memory.mb, "backbone": str(featurizer.backbone)}


def benchmark_in_child(cls, args):
    """:func:`benchmark` in a fresh process, so that every method's peak memory is its
    own and a crash ends only its row."""
    command = (
        [
            sys.executable,
            __file__,
            "--one",
            f"{cls.__module__}.{cls.__qualname__}",
            "--mnist",
            args.mnist,
            "--n-images",
            str(args.n_images),
            "--epochs",
            str(args.epochs),
            "--repeats",
            str(args.repeats),
            "--device",
            args.device,
        ]
        + (["--steps", str(args.steps)] if args.steps else [])
        + (["--verbose"] if args.verbose else [])
    )
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    lines = completed.stdout.strip().splitlines()
    if not lines:
        return {"error": f"exit status {completed.returncode}"}
    return json.loads(lines[-1])


# Methods that need colour images run on 16x16 RGB patches of sklearn's sample photographs.
COLOUR_ONLY = ("ColorizationFeaturizer",)


def run_one(args):
    """The ``--one`` child: one method's numbers as a JSON line."""
    cls = select([], args.one)[0]
    if cls.__name__ in COLOUR_ONLY:
        X, _ = load_sample_patches(n_patches=args.n_images, random_state=0)
    else:
        X, _ = load_images(args.mnist, args.n_images)
    try:
        result = benchmark(cls, X, args, torch.device(args.device))
        if cls.__name__ in COLOUR_ONLY:
            result["backbone"] += " (RGB 16x16 patches)"
    except Exception as exc:  # a method that cannot run on these images: say why
        if args.verbose:
            traceback.print_exc()
        result = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    print(json.dumps(result))


def print_table(classes, args, device):
    print(
        "| method | backbone | device | fit img/s | pretext img/s | model-only img/s | ratio "
        "| transform img/s | bare img/s | ratio | fit peak MB |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    for cls in classes:
        r = benchmark_in_child(cls, args)
        if "error" in r:
            print(f"| {cls.__name__} | - | {device} | failed: {r['error'][:120]} | | | | | | | |", flush=True)
            continue
        print(
            f"| {cls.__name__} | {r['backbone']} | {device} | {r['fit']:,.0f} | {r['pretext']:,.0f} "
            f"| {r['model']:,.0f} "
            f"| {r['ratio']:.2f} | {r['transform']:,.0f} | {r['bare']:,.0f} "
            f"| {r['transform_ratio']:.2f} | {r['peak_mb']:,.0f} |",
            flush=True,
        )


def peer_rate(python, peer, mnist, epochs):
    """Run ``peers.py`` under another environment's interpreter; its JSON result."""
    script = Path(__file__).with_name("peers.py")
    completed = subprocess.run(
        [python, str(script), peer, "--mnist", mnist, "--epochs", str(epochs)],
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"peers.py {peer} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# RotNet against the Keras lab: the defaults, the lab's network (its convolutions have
# no batch norm), and that network under bfloat16 autocast (fast on CPUs with native
# bfloat16; the lab itself runs float32).
LAB_NETWORK = {"backbone": "small_cnn", "backbone_kwargs": {"batch_norm": False}}
LAB_VARIANTS = [
    ("defaults", {}),
    ("lab network", LAB_NETWORK),
    ("lab network, bfloat16", {**LAB_NETWORK, "precision": "bfloat16"}),
]


def compare_with_peers(args, device):
    """RotNet on the Keras lab's settings against the lab; SimCLR against lightly.

    Both sides train on the first 10,000 MNIST images for ``--epochs`` epochs, A/B
    interleaved: every round runs the peer, then each skssl configuration. A ratio is
    the median of the per-round ratios. The Keras lab counts rotated images (four per
    source image), so RotNet's rate is given in the same unit; lightly counts source
    images. RotNet runs with 48 images = 192 rotated inputs a batch (the lab's 192) in
    the configurations of ``LAB_VARIANTS``; SimCLR with its defaults (batch 256).
    """
    if not Path(args.mnist).exists():
        raise SystemExit(f"the peer comparison needs MNIST: no file {args.mnist}")
    X, _ = load_images(args.mnist, 10000)
    # bfloat16 is emulated, many times slower, on CPUs without native support (no AVX512-BF16)
    lab_variants = [variant for variant in LAB_VARIANTS if args.bfloat16 or "precision" not in variant[1]]
    pairs = [
        ("keras", args.keras_python, skssl.RotNetFeaturizer, lab_variants, "rotated images/s", 1.0),
        ("lightly", args.lightly_python, skssl.SimCLRFeaturizer, [("defaults", {})], "source images/s", 3.0),
    ]
    print("\n| skssl | configuration | peer | skssl | peer | unit | ratio | issue target | rounds (skssl / peer) |")
    print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |", flush=True)
    for peer, python, cls, variants, unit, target in pairs:
        if not python:
            continue
        featurizers = [cls(random_state=0, device=str(device), **kwargs) for _, kwargs in variants]
        ours, theirs = [[] for _ in variants], []
        for _ in range(args.repeats):  # A/B interleaved
            result = peer_rate(python, peer, args.mnist, args.epochs)
            theirs.append(result["images_per_second"])
            for rates, featurizer in zip(ours, featurizers):
                fitted, rate = pretext_rate(featurizer, X, args.epochs)
                rates.append(rate * (inputs_per_image(fitted, X, device) if peer == "keras" else 1.0))
        t = statistics.median(theirs)
        for (name, _), rates in zip(variants, ours):
            ratio = statistics.median(a / b for a, b in zip(rates, theirs))
            rounds = ", ".join(f"{a:,.0f} / {b:,.0f}" for a, b in zip(rates, theirs))
            print(
                f"| {cls.__name__} | {name} | {result['version']} | {statistics.median(rates):,.0f} | {t:,.0f} "
                f"| {unit} | {ratio:.2f} | >= {target:.2f} | {rounds} |",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", help="comma-separated class names (default: every featurizer)")
    parser.add_argument("--mnist", default=str(Path(__file__).parents[2] / "shared" / "data" / "mnist_train.npz"))
    parser.add_argument("--n-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3, help="per fit against a peer; the first is a warm-up")
    parser.add_argument("--steps", type=int, help="timed model-only steps (default: an epoch's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keras-python", help="interpreter of an environment with tensorflow-cpu")
    parser.add_argument("--lightly-python", help="interpreter of an environment with lightly")
    parser.add_argument("--peers-only", action="store_true", help="skip the per-method table")
    parser.add_argument(
        "--no-bfloat16", dest="bfloat16", action="store_false", help="skip the lab network under bfloat16"
    )
    parser.add_argument("--verbose", action="store_true", help="print the traceback of a failed method")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one method, in a child process
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is a warm-up)")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.one:
        return run_one(args)
    classes = select(pretrained_featurizers(), args.methods)
    X, data_name = load_images(args.mnist, args.n_images)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"# {datetime.datetime.now():%Y-%m-%d %H:%M}, `{' '.join([Path(sys.executable).name, *sys.argv])}`\n"
        f"# {data_name}, {len(X)} images; a warm-up epoch, then medians of {args.repeats} "
        f"interleaved rounds; skssl {skssl.__version__}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, {platform.machine()}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; load average at start {load}\n",
        flush=True,
    )
    if not args.peers_only:
        print_table(classes, args, device)
    if args.keras_python or args.lightly_python:
        compare_with_peers(args, device)
    if hasattr(os, "getloadavg"):
        print(f"\n# load average at end {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
