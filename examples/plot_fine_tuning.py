"""
Fine-tuning the pretext network on a few labels
===============================================

The whole pipeline: SimCLR pretext-trains on every training image; then, for a growing
number of labels (the other images unlabeled, ``y == -1``):

- **frozen**: a logistic regression on its frozen features;
- **fine-tuned**: :class:`~skssl.FineTunedClassifier`, its network fine-tuned on the
  labels and then self-trained on the unlabeled images;
- **same network, labels only** / **+ self-training**: the same network from its random
  initial weights, trained the same way without and with the self-training stage;
- scikit-learn's **self-training** and **label spreading** on raw pixels, and the
  logistic regression on raw **pixels**.

The featurizer pretext-trains once; wrapped in :class:`~sklearn.frozen.FrozenEstimator`
it is not fitted again for each number of labels. Digits by default; pass ``--data``
with MNIST files for 10,000 training images of 28x28 pixels (``benchmarks/RESULTS.md``
has the measured curves).
"""

import argparse

import matplotlib.pyplot as plt

from skssl import SimCLRFeaturizer
from skssl.datasets import load_digits_images, load_mnist
from skssl.evaluation import label_efficiency, plot_label_efficiency

parser = argparse.ArgumentParser()
parser.add_argument("--data", help="MNIST .npz or idx files; default: digits")
parser.add_argument("--max-epochs", type=int, default=None, help="a tiny run: every stage's epochs")
args, _ = parser.parse_known_args()

if args.data:
    X, y = load_mnist(args.data)
    X_train, y_train, X_test, y_test = X[:10_000], y[:10_000], X[50_000:52_000], y[50_000:52_000]
    n_labels, pretext = (100, 1000), {}
else:
    X, y = load_digits_images()
    X_train, y_train, X_test, y_test = X[:900], y[:900], X[900:], y[900:]
    n_labels, pretext = (50, 180), {"max_epochs": 300, "batch_size": 128}  # ~2,000 steps on 900 images
classifier = {}
if args.max_epochs is not None:
    pretext = {"max_epochs": args.max_epochs}
    classifier = {"max_epochs": args.max_epochs, "semi_supervised_epochs": args.max_epochs}

featurizer = SimCLRFeaturizer(random_state=0, **pretext).fit(X_train)  # every image, no labels
table = label_efficiency(
    featurizer,
    X_train,
    y_train,
    X_test,
    y_test,
    n_labels=n_labels,
    classifier_params=classifier,
    baselines=(
        "fine_tuned",
        "supervised_augmented",
        "supervised_semi_supervised",
        "pixels",
        "self_training_pixels",
        "label_spreading_pixels",
    ),
)
names = {
    "SimCLRFeaturizer": "frozen",
    "fine_tuned": "fine-tuned",
    "supervised_augmented": "same network, labels only",
    "supervised_semi_supervised": "same network + self-training",
    "self_training_pixels": "self-training (pixels)",
    "label_spreading_pixels": "label spreading (pixels)",
}
table["method"] = table["method"].replace(names)
print(table.pivot(index="n_labels", columns="method", values="accuracy").round(3).to_string())

ax = plot_label_efficiency(table)
ax.set_ylim(0.5, 1.0)
ax.legend(fontsize="small")
ax.figure.tight_layout()
plt.show()
