"""
Grid search over pretext settings
=================================

A featurizer is a pipeline step like any other: ``GridSearchCV`` tunes its pretext
settings (here SimCLR's temperature and crop strength) against the downstream
accuracy of the classifier that follows. ``Pipeline(memory=...)`` would cache fitted
featurizers across classifier settings.
"""

import argparse

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skssl import SimCLRFeaturizer
from skssl.datasets import load_digits_images

parser = argparse.ArgumentParser()
parser.add_argument("--max-epochs", type=int, default=15)
args, _ = parser.parse_known_args()

X, y = load_digits_images()
X, y = X[:600], y[:600]
pipe = make_pipeline(
    SimCLRFeaturizer(max_epochs=args.max_epochs, random_state=0),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
grid = {
    "simclrfeaturizer__temperature": [0.2, 0.5],
    "simclrfeaturizer__crop_scale": [(0.3, 1.0), (0.7, 1.0)],
}
search = GridSearchCV(pipe, grid, cv=3, n_jobs=1).fit(X, y)
results = pd.DataFrame(
    {
        "setting": [
            f"t={p['simclrfeaturizer__temperature']}, crop>={p['simclrfeaturizer__crop_scale'][0]}"
            for p in search.cv_results_["params"]
        ],
        "accuracy": search.cv_results_["mean_test_score"],
        "std": search.cv_results_["std_test_score"],
    }
)
print(results.to_string(index=False))
print("best:", search.best_params_, f"{search.best_score_:.3f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(results["setting"], results["accuracy"], xerr=results["std"])
ax.set_xlabel("cross-validated accuracy")
fig.tight_layout()
plt.show()
