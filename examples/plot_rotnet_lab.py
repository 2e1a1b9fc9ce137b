"""
The classic rotation lab, reproduced
====================================

The course lab on rotation pretext training: pretext on the first 10,000 MNIST
training images (unlabeled), downstream on the next 1,000 labeled images, with the
small 3-conv network; the downstream model is the first two conv blocks, frozen,
plus one dense layer. The lab reports 89.67% (rotation features) against 89.33%
(the same network trained supervised) on 300 test images.

Here the same protocol runs with skssl: ``RotNetFeaturizer`` (frozen ``conv2``
features) with a logistic-regression probe (one dense softmax layer), compared with
the same network trained end to end on the labels, with its random-init features,
and with raw pixels. Run ``python examples/plot_rotnet_lab.py --data
../shared/data/mnist_train.npz`` for MNIST; by default it uses the digits, split
the same way (1,000 unlabeled, 300 labeled, the rest for testing).
``--lab-network`` drops the batch norm that skssl's ``small_cnn`` adds, for the lab's
own network; ``--precision bfloat16`` trains under bfloat16 autocast; ``--backbone
wide_cnn`` runs skssl's default network instead of the lab's widths.
"""

import argparse

import matplotlib.pyplot as plt
from sklearn.base import clone

from skssl import RotNetFeaturizer, SupervisedClassifier
from skssl.datasets import load_digits_images, load_mnist
from skssl.evaluation import linear_probe, pixel_probe

parser = argparse.ArgumentParser()
parser.add_argument("--data", help="MNIST .npz or idx files; default: digits")
parser.add_argument("--max-epochs", type=int, default=None, help="default: the featurizer's")
parser.add_argument("--lab-network", action="store_true", help="the lab's convolutions, without batch norm")
parser.add_argument("--backbone", default="small_cnn", help="default: the lab's widths (small_cnn)")
parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
args, _ = parser.parse_known_args()

if args.data:
    X, y = load_mnist(args.data)
    splits = (10_000, 1_000)  # unlabeled pretext images, labeled downstream images
else:
    X, y = load_digits_images()
    splits = (1_000, 300)
X_unlabeled = X[: splits[0]]
X_labeled, y_labeled = X[splits[0] : sum(splits)], y[splits[0] : sum(splits)]
X_test, y_test = X[sum(splits) : sum(splits) + 2_000], y[sum(splits) : sum(splits) + 2_000]

rotnet = RotNetFeaturizer(backbone=args.backbone, random_state=0, precision=args.precision)
if args.lab_network:
    rotnet.set_params(backbone_kwargs={"batch_norm": False})
if args.max_epochs is not None:
    rotnet.set_params(max_epochs=args.max_epochs)
rotnet.fit(X_unlabeled)
untrained = clone(rotnet).set_params(max_epochs=0).fit(X_unlabeled)
supervised = SupervisedClassifier(
    random_state=0, max_epochs=args.max_epochs or 30, backbone=rotnet.backbone, backbone_kwargs=rotnet.backbone_kwargs
)
supervised.fit(X_labeled, y_labeled)

results = {
    "rotation features (conv2)": linear_probe(rotnet, X_labeled, y_labeled, X_test, y_test),
    "supervised network": supervised.score(X_test, y_test),
    "random-init features": linear_probe(untrained, X_labeled, y_labeled, X_test, y_test),
    "raw pixels": pixel_probe(X_labeled, y_labeled, X_test, y_test),
}
print(f"{len(X_unlabeled)} unlabeled, {len(X_labeled)} labeled, {len(X_test)} test images")
for name, accuracy in results.items():
    print(f"{name:<28}{accuracy:.4f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(results), list(results.values()), color=["C0", "C1", "C7", "C2"])
ax.set_xlim(min(results.values()) - 0.1, 1.0)
ax.set_xlabel("test accuracy")
ax.set_title("Rotation pretext vs supervised, random and raw pixels")
fig.tight_layout()
plt.show()
