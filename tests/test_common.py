"""scikit-learn's own estimator checks, over every featurizer."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skssl import (
    DenoisingAEFeaturizer,
    RandomFeaturizer,
    RotNetFeaturizer,
    SimCLRFeaturizer,
    SupervisedClassifier,
)

FAST = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
FEATURIZERS = [
    RotNetFeaturizer(**FAST),
    SimCLRFeaturizer(**FAST),
    DenoisingAEFeaturizer(**FAST),
    RandomFeaturizer(device="cpu", random_state=0),  # never trains: no epochs or batches
    SupervisedClassifier(**FAST),
]


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@pytest.mark.filterwarnings("ignore:batch_size=.* is larger than")
@parametrize_with_checks(FEATURIZERS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
