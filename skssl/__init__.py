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

from . import datasets, evaluation, heads, io, metrics, plotting, registry, semi_supervised, task, transfer
from ._persistence import load
from ._version import __version__
from .base import BaseFeaturizer
from .baselines import RandomFeaturizer, SupervisedClassifier
from .io import ImageFolderLoader
from .methods import (
    BarlowTwinsFeaturizer,
    BYOLFeaturizer,
    ColorizationFeaturizer,
    ContextEncoderFeaturizer,
    CountingFeaturizer,
    CPCFeaturizer,
    DeepClusterFeaturizer,
    DenoisingAEFeaturizer,
    DINOFeaturizer,
    ExemplarFeaturizer,
    JigsawFeaturizer,
    MAEFeaturizer,
    MoCoFeaturizer,
    RelativePositionFeaturizer,
    RotNetFeaturizer,
    SimCLRFeaturizer,
    SimSiamFeaturizer,
    SplitBrainFeaturizer,
    SwAVFeaturizer,
    VICRegFeaturizer,
)
from .metrics import labeled_scorer
from .semi_supervised import LabeledOnly
from .transfer import FineTunedClassifier

__all__ = [
    "BarlowTwinsFeaturizer",
    "BaseFeaturizer",
    "BYOLFeaturizer",
    "ColorizationFeaturizer",
    "ContextEncoderFeaturizer",
    "CountingFeaturizer",
    "CPCFeaturizer",
    "DeepClusterFeaturizer",
    "DenoisingAEFeaturizer",
    "DINOFeaturizer",
    "ExemplarFeaturizer",
    "FineTunedClassifier",
    "ImageFolderLoader",
    "JigsawFeaturizer",
    "labeled_scorer",
    "LabeledOnly",
    "MAEFeaturizer",
    "MoCoFeaturizer",
    "RandomFeaturizer",
    "RelativePositionFeaturizer",
    "RotNetFeaturizer",
    "SimCLRFeaturizer",
    "SimSiamFeaturizer",
    "SplitBrainFeaturizer",
    "SupervisedClassifier",
    "SwAVFeaturizer",
    "VICRegFeaturizer",
    "__version__",
    "datasets",
    "evaluation",
    "heads",
    "io",
    "load",
    "metrics",
    "plotting",
    "registry",
    "semi_supervised",
    "task",
    "transfer",
]
