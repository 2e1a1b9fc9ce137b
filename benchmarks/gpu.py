"""GPU throughput of the training step: the full fit path against the model-only step.

    python benchmarks/gpu.py [--device cuda] [--steps 40] [--warmup 5] [--batch-size 256]
        [--n-images 8192] [--configs all] [--settings float32,bfloat16,bfloat16+compile]

Ready before a GPU is at hand: one command, fixed step counts, about 5 minutes on one
GPU. Rows: SimCLR and RotNet with ``resnet18`` on 32x32 RGB images and with the small
CNN on 28x28 grayscale ones (MNIST's first images when ``--mnist`` exists, else
random ones of the same shape: throughput does not depend on content), and
:class:`~skssl.FineTunedClassifier`'s two steps (fine-tuning on labels, self-training
on labeled and unlabeled images) on the same networks. Per row and setting
(``float32`` / ``bfloat16`` autocast, with or without ``torch.compile``):

- *fit img/s*: source images per second of the loop's step as ``fit`` runs it: a
  random batch of the raw training set on the device, scaled to [0, 1], the task's
  views (augmentation, rotations), forward, backward, AdamW step;
- *model img/s*: the same step on inputs prepared once beforehand (for the
  classifier's steps, whose views are made inside the step: on one fixed batch with
  augmentation switched off);
- *ratio*: fit / model, the share of the step left after the data path;
- *first s*: the seconds of the first ``--warmup`` steps, which hold the compilation
  (reported apart: the timed steps start after them);
- *peak MB*: peak allocated CUDA memory of the timed steps (on the CPU: not measured).

The two steps alternate step by step, so that a shared machine slows both alike. A
test runs this on the CPU with tiny settings (``tests/test_benchmarks.py``).
"""

import argparse
import contextlib
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.frozen import FrozenEstimator

from skssl import FineTunedClassifier, RotNetFeaturizer, SimCLRFeaturizer, _transfer_tasks
from skssl._data import check_images
from skssl._training import autocast, parameter_groups, to_unit
from skssl._transfer_tasks import SelfTrainingTask

SETTINGS = ("float32", "bfloat16", "float32+compile", "bfloat16+compile")
CONFIGS = {  # name: (what, backbone, image shape (H, W, C))
    "simclr-resnet18": ("SimCLR", "resnet18", (32, 32, 3)),
    "rotnet-resnet18": ("RotNet", "resnet18", (32, 32, 3)),
    "finetune-resnet18": ("FineTuned", "resnet18", (32, 32, 3)),
    "selftrain-resnet18": ("SelfTraining", "resnet18", (32, 32, 3)),
    "simclr-small_cnn": ("SimCLR", "small_cnn", (28, 28, 1)),
    "rotnet-small_cnn": ("RotNet", "small_cnn", (28, 28, 1)),
    "finetune-small_cnn": ("FineTuned", "small_cnn", (28, 28, 1)),
    "selftrain-small_cnn": ("SelfTraining", "small_cnn", (28, 28, 1)),
}


def images_of(shape, n_images, mnist):
    """``n_images`` uint8 images of ``shape`` (H, W, C): MNIST's when it fits, else random."""
    if shape == (28, 28, 1) and mnist and Path(mnist).exists():
        return np.load(mnist)["X"][:n_images]
    return np.random.default_rng(0).integers(0, 256, size=(n_images, *shape), dtype=np.uint8)


def build(what, backbone, X, device, batch_size):
    """``(task, raw images on the device, value_range, targets or None)``."""
    kwargs = dict(backbone=backbone, device=str(device), random_state=0, max_epochs=0)
    if what in ("SimCLR", "FineTuned", "SelfTraining"):
        featurizer = SimCLRFeaturizer(**kwargs, batch_size=batch_size).fit(X)
    else:
        featurizer = RotNetFeaturizer(**kwargs, batch_size=batch_size).fit(X)
    targets = None
    if what in ("SimCLR", "RotNet"):
        task = featurizer._trainable_task()
    else:
        labels = np.arange(len(X)) % 10
        classifier = FineTunedClassifier(
            FrozenEstimator(featurizer), max_epochs=0, semi_supervised=None, device=str(device), random_state=0
        ).fit(X, labels)
        task = classifier.task_.requires_grad_(True)
        if what == "SelfTraining":
            task = SelfTrainingTask(task, threshold=0.0)  # every unlabeled image counts
            labels = np.where(np.arange(len(X)) % 10 == 0, labels, -1)  # a tenth labeled
        targets = torch.as_tensor(labels, device=device)
    images = torch.as_tensor(np.ascontiguousarray(check_images(featurizer, X, reset=False)), device=device)
    return task.to(device), images, featurizer.value_range_, targets


@contextlib.contextmanager
def no_augmentation(task):
    """The classifier's steps without their views: ``augment`` off, strong views as they are."""
    network = getattr(task, "network", task)
    augment, strong = network.augment, _transfer_tasks.strong_augment
    network.augment, _transfer_tasks.strong_augment = False, lambda batch, generator: batch
    try:
        yield
    finally:
        network.augment, _transfer_tasks.strong_augment = augment, strong


def time_steps(task, images, value_range, targets, *, device, batch_size, steps, warmup, precision, compiled):
    """``steps`` fit-path and model-only steps, alternated, after ``warmup`` ones:
    ``(fit img/s, model img/s, warm-up seconds, peak MB)``."""
    generator = torch.Generator(device).manual_seed(0)
    task.train()
    optimizer = torch.optim.AdamW(parameter_groups(task, 1e-4), fused=device.type in ("cpu", "cuda"))
    model = torch.compile(task) if compiled else task
    mixed = autocast(device, precision)
    fixed_batch = to_unit(images[:batch_size], value_range)
    fixed_targets = None if targets is None else targets[:batch_size]
    if targets is None:
        fixed_inputs, fixed_view_targets = task.views(fixed_batch, generator)

    def fit_step():
        indices = torch.randint(len(images), (batch_size,), generator=generator, device=device)
        batch = to_unit(images[indices], value_range)
        return model(batch, generator) if targets is None else model(batch, generator, targets[indices])

    def model_step():
        if targets is None:
            return task.loss(fixed_inputs, fixed_view_targets)
        with no_augmentation(task):  # a classifier's views are inside its forward
            return model(fixed_batch, generator, fixed_targets)

    seconds = {"fit": 0.0, "model": 0.0}
    warmup_seconds = 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(warmup + steps):
        for name, run in (("fit", fit_step), ("model", model_step)):
            _sync(device)
            start = time.perf_counter()
            with mixed:
                loss = run()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(device)
            elapsed = time.perf_counter() - start
            if step < warmup:
                warmup_seconds += elapsed
            else:
                seconds[name] += elapsed
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return steps * batch_size / seconds["fit"], steps * batch_size / seconds["model"], warmup_seconds, peak


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-images", type=int, default=8192)
    parser.add_argument("--mnist", default="../shared/data/mnist_train.npz")
    parser.add_argument("--configs", default="all", help="comma-separated of: " + ", ".join(CONFIGS))
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated of: " + ", ".join(SETTINGS))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    configs = list(CONFIGS) if args.configs == "all" else [c.strip() for c in args.configs.split(",")]
    settings = [s.strip() for s in args.settings.split(",")]
    for name in configs + settings:
        if name not in CONFIGS and name not in SETTINGS:
            parser.error(f"unknown config or setting {name!r}")
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {hardware}, torch "
        f"{torch.__version__}, {args.steps} timed steps of {args.batch_size} source images after "
        f"{args.warmup} warm-up steps\n"
    )
    print("| config | setting | fit img/s | model img/s | ratio | first s | peak MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for config in configs:
        what, backbone, shape = CONFIGS[config]
        X = images_of(shape, args.n_images, args.mnist)
        for setting in settings:
            precision, _, compiled = setting.partition("+")
            try:
                task, images, value_range, targets = build(what, backbone, X, device, args.batch_size)
                fit, model, first, peak = time_steps(
                    task,
                    images,
                    value_range,
                    targets,
                    device=device,
                    batch_size=args.batch_size,
                    steps=args.steps,
                    warmup=args.warmup,
                    precision=precision,
                    compiled=bool(compiled),
                )
                print(
                    f"| {config} | {setting} | {fit:,.0f} | {model:,.0f} | {fit / model:.2f} | "
                    f"{first:.1f} | {peak:,.0f} |",
                    flush=True,
                )
            except Exception as exc:  # a setting this machine cannot run: say why, go on
                print(f"| {config} | {setting} | failed: {str(exc).splitlines()[0][:80]} | | | | |", flush=True)


if __name__ == "__main__":
    main()
