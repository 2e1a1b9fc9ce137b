"""
How many labels does self-supervision save?
===========================================

Accuracy against the number of labels for SimCLR features, the same network trained
supervised on those labels, its random-init features and raw pixels. Pass ``--data``
with MNIST for the full curve (10 to 1,000 labels).
"""

import argparse

import matplotlib.pyplot as plt

from skssl import SimCLRFeaturizer
from skssl.datasets import load_digits_images, load_mnist
from skssl.evaluation import label_efficiency, plot_label_efficiency

parser = argparse.ArgumentParser()
parser.add_argument("--data", help="MNIST .npz or idx files; default: digits")
parser.add_argument("--max-epochs", type=int, default=None)
args, _ = parser.parse_known_args()

if args.data:
    X, y = load_mnist(args.data)
    X_unlabeled, X_train, y_train = X[:10_000], X[10_000:20_000], y[10_000:20_000]
    X_test, y_test = X[50_000:52_000], y[50_000:52_000]
    n_labels = (10, 20, 50, 100, 500, 1000)
else:
    X, y = load_digits_images()
    X_unlabeled, X_train, y_train, X_test, y_test = X[:1000], X[:1000], y[:1000], X[1000:], y[1000:]
    n_labels = (10, 20, 50, 100, 500)

featurizer = SimCLRFeaturizer(random_state=0)
if args.max_epochs is not None:
    featurizer.set_params(max_epochs=args.max_epochs)
featurizer.fit(X_unlabeled)
table = label_efficiency(featurizer, X_train, y_train, X_test, y_test, n_labels=n_labels)
print(table)

ax = plot_label_efficiency(table)
ax.figure.tight_layout()
plt.show()
