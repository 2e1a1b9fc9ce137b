"""One module per pretext method: its views/targets, head, loss and estimator."""

from .barlow_twins import BarlowTwinsFeaturizer
from .byol import BYOLFeaturizer
from .denoising import DenoisingAEFeaturizer
from .moco import MoCoFeaturizer
from .rotation import RotNetFeaturizer
from .simclr import SimCLRFeaturizer
from .simsiam import SimSiamFeaturizer
from .vicreg import VICRegFeaturizer

__all__ = [
    "BYOLFeaturizer",
    "BarlowTwinsFeaturizer",
    "DenoisingAEFeaturizer",
    "MoCoFeaturizer",
    "RotNetFeaturizer",
    "SimCLRFeaturizer",
    "SimSiamFeaturizer",
    "VICRegFeaturizer",
]
