"""scikit-learn's own estimator checks, over every featurizer."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skssl import DenoisingAEFeaturizer, RotNetFeaturizer, SimCLRFeaturizer

FAST = dict(max_epochs=2, batch_size=16, device="cpu", random_state=0)
FEATURIZERS = [
    RotNetFeaturizer(**FAST),
    SimCLRFeaturizer(**FAST),
    DenoisingAEFeaturizer(**FAST),
]


@pytest.mark.filterwarnings("ignore:X has .* columns, which is not a square")
@parametrize_with_checks(FEATURIZERS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
