"""Peer baselines for ``throughput.py --keras-python ... --lightly-python ...``, run by
the interpreter of an environment that has them.

    python benchmarks/peers.py keras  --mnist PATH [--epochs 3]   # needs tensorflow-cpu
    python benchmarks/peers.py lightly --mnist PATH [--epochs 3]  # needs lightly

Neither package is a dependency of skssl (nor needs skssl): install each in its own
throwaway environment outside the repository, e.g.

    python -m venv ../peers-tf && ../peers-tf/bin/pip install tensorflow-cpu
    python -m venv ../peers-lightly && ../peers-lightly/bin/pip install torch torchvision lightly

Prints one JSON line: ``{"peer", "images_per_second", "unit", "version"}``, timed over
the epochs after a warm-up epoch.

- keras: the classic rotation lab. 10,000 MNIST images, each rotated by 0/90/180/270
  degrees up front (40,000 samples), the lab network Conv64/s2 - pool - Conv32 - pool
  - Conv16/s2 - Dense(4), batch 192, Adam. Unit: rotated images per second.
- lightly: SimCLR as lightly's own examples set it up. 10,000 MNIST images through a
  DataLoader with 2 workers and per-sample torchvision augmentation (lightly's
  ``SimCLRTransform``), the same small network, lightly's projection head and
  NT-Xent loss, batch 256. Unit: source images per second (two views each).
"""

import argparse
import json
import os
import time

import numpy as np


def keras_lab(X, epochs):
    import tensorflow as tf
    from tensorflow import keras

    threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
    if threads:  # as many threads as the skssl side (TF otherwise takes one per core)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    images = X[:10000].astype("float32")[..., None] / 255.0
    rotated = np.concatenate([np.rot90(images, k, axes=(1, 2)) for k in range(4)])
    labels = np.repeat(np.arange(4), len(images))
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = getattr(self, "seconds", []) + [time.perf_counter() - self.start]

    timer = Timer()
    model.fit(rotated, labels, batch_size=192, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return len(rotated) * (epochs - 1) / sum(timer.seconds[1:]), f"tensorflow {tf.__version__}"


def lightly_simclr(X, epochs):
    import lightly
    import torch
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from PIL import Image
    from torch import nn

    class MNISTViews(torch.utils.data.Dataset):
        def __init__(self, images, transform):
            self.images, self.transform = images, transform

        def __len__(self):
            return len(self.images)

        def __getitem__(self, index):
            image = Image.fromarray(self.images[index]).convert("RGB")
            return self.transform(image)

    transform = SimCLRTransform(
        input_size=28,
        min_scale=0.3,
        cj_prob=0.8,
        cj_strength=0.5,
        random_gray_scale=0.2,
        gaussian_blur=0.0,
        vf_prob=0.0,
        hf_prob=0.0,
        rr_prob=0.0,
        normalize=None,
    )  # skssl SimCLRFeaturizer defaults
    loader = torch.utils.data.DataLoader(
        MNISTViews(X[:10000], transform),
        batch_size=256,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        persistent_workers=True,
    )
    backbone = nn.Sequential(
        nn.Conv2d(3, 64, 3, 2, 1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 32, 3, 1, 1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 16, 3, 2, 1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
    )
    head = SimCLRProjectionHead(64, 512, 128)
    criterion = NTXentLoss(temperature=0.5)
    parameters = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        n_images = 0
        for view_a, view_b in loader:
            z = head(backbone(torch.cat([view_a, view_b])))
            loss = criterion(*z.chunk(2))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n_images += len(view_a)
        seconds.append(time.perf_counter() - start)
    return n_images * (epochs - 1) / sum(seconds[1:]), f"lightly {lightly.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("peer", choices=["keras", "lightly"])
    parser.add_argument("--mnist", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    X = np.load(args.mnist)["X"]
    run = {"keras": keras_lab, "lightly": lightly_simclr}[args.peer]
    rate, version = run(X, args.epochs)
    unit = "rotated images/s" if args.peer == "keras" else "source images/s"
    print(json.dumps({"peer": args.peer, "images_per_second": rate, "unit": unit, "version": version}))


if __name__ == "__main__":
    main()
