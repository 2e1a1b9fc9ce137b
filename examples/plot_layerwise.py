"""
Which layer gives the best features?
====================================

A linear probe on every stage of the backbone, for a rotation-pretrained and a
contrastive (SimCLR) network, like the classic "conv1 ... conv5" tables: rotation
features are known to peak before the last block, contrastive ones at its output.
"""

import argparse

import matplotlib.pyplot as plt

from skssl import RotNetFeaturizer, SimCLRFeaturizer
from skssl.datasets import load_digits_images
from skssl.evaluation import layerwise_probe, plot_layerwise

parser = argparse.ArgumentParser()
parser.add_argument("--max-epochs", type=int, default=None)
args, _ = parser.parse_known_args()

X, y = load_digits_images()
X_unlabeled, X_train, y_train, X_test, y_test = X[:1000], X[:300], y[:300], X[1000:], y[1000:]

fig, ax = plt.subplots(figsize=(6, 3.5))
for featurizer in (RotNetFeaturizer(random_state=0), SimCLRFeaturizer(random_state=0)):
    if args.max_epochs is not None:
        featurizer.set_params(max_epochs=args.max_epochs)
    featurizer.fit(X_unlabeled)
    table = layerwise_probe(featurizer, X_train, y_train, X_test, y_test)
    print(type(featurizer).__name__)
    print(table)
    plot_layerwise(table, ax=ax)
ax.legend(["RotNet", "SimCLR"])
fig.tight_layout()
plt.show()
