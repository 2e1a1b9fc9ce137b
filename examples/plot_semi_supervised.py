"""
Semi-supervised pipelines with 1% to 10% of the labels
======================================================

Most images come without a label; scikit-learn marks those rows ``y == -1``. Three
estimators, each fitted on all the training images with the labels it is given:

- **SSL pipeline**: a SimCLR featurizer pretext-trains on every image, labeled or not,
  and :class:`~skssl.semi_supervised.LabeledOnly` fits a logistic regression on the
  features of the labeled ones.
- **labels only**: the same logistic regression on the raw pixels of the labeled
  images (the unlabeled ones only enter the standardisation).
- **self-training**: :class:`~sklearn.semi_supervised.SelfTrainingClassifier` on raw
  pixels, which labels the unlabeled images with its own confident predictions and
  fits again.

Pretext training ignores the labels, and every label fraction below has the same
training images, so the featurizer is trained once and frozen
(:class:`~sklearn.frozen.FrozenEstimator`) instead of again for every fraction; inside
a cross-validation, ``make_pipeline(SimCLRFeaturizer(), StandardScaler(),
LabeledOnly(...))`` pretext-trains on all the images of each fold.

On digits, the pretext features help most where labels are fewest: with 10 labels
(1%), 0.67 test accuracy against 0.59 for the pixels and 0.43 for self-training (these
defaults, ``random_state=0``). From 5% of the labels on, the 64 raw pixels of these
tiny images catch up and self-training on them does best. Pass ``--data`` with MNIST
files for 10,000 training images of 28x28 pixels.
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import SelfTrainingClassifier

from skssl import SimCLRFeaturizer
from skssl.datasets import load_digits_images, load_mnist
from skssl.semi_supervised import LabeledOnly

parser = argparse.ArgumentParser()
parser.add_argument("--data", help="MNIST .npz or idx files; default: digits")
parser.add_argument("--max-epochs", type=int, default=None)
args, _ = parser.parse_known_args()

X, y = load_mnist(args.data) if args.data else load_digits_images()
X = X.reshape(len(X), -1)  # flat rows: the featurizer sees square images, the others pixels
n_train = 10_000 if args.data else 1_000
X_train, y_train = X[:n_train], y[:n_train]
X_test, y_test = X[n_train : n_train + 2_000], y[n_train : n_train + 2_000]

featurizer = SimCLRFeaturizer(random_state=0)
if args.max_epochs is not None:
    featurizer.set_params(max_epochs=args.max_epochs)
featurizer.fit(X_train)  # pretext training on all the training images, no labels


def estimators():
    """Fresh, unfitted estimators; each sees all of X_train and the labels it is given."""
    return {
        "SSL pipeline": make_pipeline(
            FrozenEstimator(featurizer),  # pretext-trained on every image
            StandardScaler(),
            LabeledOnly(LogisticRegression(max_iter=1000)),  # the labeled images only
        ),
        "labels only": make_pipeline(StandardScaler(), LabeledOnly(LogisticRegression(max_iter=1000))),
        "self-training": make_pipeline(StandardScaler(), SelfTrainingClassifier(LogisticRegression(max_iter=1000))),
    }


rows = []
for fraction in (0.01, 0.02, 0.05, 0.10):
    n_labels = round(fraction * n_train)
    labeled, _ = train_test_split(np.arange(n_train), train_size=n_labels, stratify=y_train, random_state=0)
    y_partial = np.full_like(y_train, -1)  # -1: unlabeled
    y_partial[labeled] = y_train[labeled]
    for name, estimator in estimators().items():
        accuracy = estimator.fit(X_train, y_partial).score(X_test, y_test)
        rows.append({"labels": n_labels, "fraction": fraction, "method": name, "accuracy": accuracy})

results = pd.DataFrame(rows)
table = results.pivot(index="labels", columns="method", values="accuracy")
print(f"test accuracy, {n_train} training images of which `labels` are labeled")
print(table.round(3).to_string())

fig, ax = plt.subplots(figsize=(6, 4))
for name, curve in results.groupby("method", sort=False):
    ax.plot(100 * curve["fraction"], curve["accuracy"], marker="o", label=name)
ax.set_xscale("log")
ax.set_xticks([1, 2, 5, 10], labels=["1%", "2%", "5%", "10%"])
ax.minorticks_off()
ax.set_xlabel(f"labeled share of the {n_train} training images")
ax.set_ylabel("test accuracy")
ax.legend()
fig.tight_layout()
plt.show()
