"""One module per pretext method: its views/targets, head, loss and estimator."""

from .denoising import DenoisingAEFeaturizer
from .rotation import RotNetFeaturizer
from .simclr import SimCLRFeaturizer

__all__ = ["DenoisingAEFeaturizer", "RotNetFeaturizer", "SimCLRFeaturizer"]
