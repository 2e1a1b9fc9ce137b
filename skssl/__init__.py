"""skssl: self-supervised image features as scikit-learn transformers.

Examples
--------
>>> from sklearn.datasets import load_digits
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> from skssl import RotNetFeaturizer
>>> X, y = load_digits(return_X_y=True)
>>> pipe = make_pipeline(RotNetFeaturizer(max_epochs=1, random_state=0),
...                      LogisticRegression(max_iter=200))
>>> pipe.fit(X[:200], y[:200]).predict(X[200:203]).shape
(3,)
"""

from . import datasets, evaluation
from ._persistence import load
from .base import BaseFeaturizer
from .baselines import RandomFeaturizer, SupervisedClassifier
from .methods import (
    BarlowTwinsFeaturizer,
    BYOLFeaturizer,
    DenoisingAEFeaturizer,
    MoCoFeaturizer,
    RotNetFeaturizer,
    SimCLRFeaturizer,
    SimSiamFeaturizer,
    VICRegFeaturizer,
)

__version__ = "0.1.0"

__all__ = [
    "BYOLFeaturizer",
    "BarlowTwinsFeaturizer",
    "BaseFeaturizer",
    "MoCoFeaturizer",
    "SimSiamFeaturizer",
    "VICRegFeaturizer",
    "DenoisingAEFeaturizer",
    "RandomFeaturizer",
    "RotNetFeaturizer",
    "SimCLRFeaturizer",
    "SupervisedClassifier",
    "__version__",
    "datasets",
    "evaluation",
    "load",
]
