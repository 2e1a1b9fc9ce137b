"""One module per pretext method: its views/targets, head, loss and estimator.

Importing a module registers its method (:mod:`skssl.registry`); the order below is
the order of the README's table (so the imports are not sorted).
"""

# isort: skip_file

from .rotation import RotNetFeaturizer
from .jigsaw import JigsawFeaturizer
from .relative_position import RelativePositionFeaturizer
from .colorization import ColorizationFeaturizer
from .split_brain import SplitBrainFeaturizer
from .context_encoder import ContextEncoderFeaturizer
from .denoising import DenoisingAEFeaturizer
from .exemplar import ExemplarFeaturizer
from .counting import CountingFeaturizer
from .simclr import SimCLRFeaturizer
from .moco import MoCoFeaturizer
from .byol import BYOLFeaturizer
from .simsiam import SimSiamFeaturizer
from .barlow_twins import BarlowTwinsFeaturizer
from .vicreg import VICRegFeaturizer
from .dino import DINOFeaturizer
from .swav import SwAVFeaturizer
from .deepcluster import DeepClusterFeaturizer
from .cpc import CPCFeaturizer
from .mae import MAEFeaturizer

__all__ = [
    "BarlowTwinsFeaturizer",
    "BYOLFeaturizer",
    "ColorizationFeaturizer",
    "ContextEncoderFeaturizer",
    "CountingFeaturizer",
    "CPCFeaturizer",
    "DeepClusterFeaturizer",
    "DenoisingAEFeaturizer",
    "DINOFeaturizer",
    "ExemplarFeaturizer",
    "JigsawFeaturizer",
    "MAEFeaturizer",
    "MoCoFeaturizer",
    "RelativePositionFeaturizer",
    "RotNetFeaturizer",
    "SimCLRFeaturizer",
    "SimSiamFeaturizer",
    "SplitBrainFeaturizer",
    "SwAVFeaturizer",
    "VICRegFeaturizer",
]
