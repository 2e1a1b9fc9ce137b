"""One module per pretext method: its views/targets, head, loss and estimator."""

from .barlow_twins import BarlowTwinsFeaturizer
from .byol import BYOLFeaturizer
from .colorization import ColorizationFeaturizer
from .context_encoder import ContextEncoderFeaturizer
from .counting import CountingFeaturizer
from .cpc import CPCFeaturizer
from .deepcluster import DeepClusterFeaturizer
from .denoising import DenoisingAEFeaturizer
from .dino import DINOFeaturizer
from .exemplar import ExemplarFeaturizer
from .jigsaw import JigsawFeaturizer
from .mae import MAEFeaturizer
from .moco import MoCoFeaturizer
from .relative_position import RelativePositionFeaturizer
from .rotation import RotNetFeaturizer
from .simclr import SimCLRFeaturizer
from .simsiam import SimSiamFeaturizer
from .split_brain import SplitBrainFeaturizer
from .swav import SwAVFeaturizer
from .vicreg import VICRegFeaturizer

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
