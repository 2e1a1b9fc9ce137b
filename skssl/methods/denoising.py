"""Denoising autoencoder: learn features from which a corrupted image can be restored.

- [0] Vincent, Larochelle, Lajoie, Bengio & Manzagol, "Stacked Denoising Autoencoders:
  Learning Useful Representations in a Deep Network with a Local Denoising
  Criterion", JMLR 11, 2010.
"""

from numbers import Real

import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions

from .. import augment
from .._panels import ViewPanel
from ..backbones import pool
from ..base import BaseFeaturizer
from ..heads import mlp_decoder
from ..registry import register_method
from ..task import PretextTask

CORRUPTIONS = {
    "gaussian": augment.gaussian_noise,  # noise_level is the noise std
    "masking": augment.mask_pixels,  # noise_level is the fraction of pixels zeroed
    "salt_pepper": augment.salt_pepper,  # noise_level is the fraction set to 0 or 1
}


class DenoisingTask(PretextTask):
    """Corrupt, encode, decode, and score the reconstruction against the clean image.

    "the key idea is to learn a representation that is robust to the introduction
    of noise" [0]: the loss is the squared error to the *uncorrupted* input.
    """

    def __init__(self, backbone, pool_how, *, noise, noise_level, n_hidden=512):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.corrupt = CORRUPTIONS[noise]
        self.noise_level = noise_level
        self.decoder = mlp_decoder(backbone.pooled_size(pool_how), backbone.in_shape, n_hidden)

    def views(self, batch, generator, targets=None):
        return self.corrupt(batch, generator, **{self._level_name: self.noise_level}), batch

    def reconstruct(self, inputs):
        """The decoder's clean images ``(B, C*H*W)`` of corrupted ``inputs`` (B, C, H, W)."""
        return self.decoder(pool(self.backbone(inputs), self.pool_how))

    def loss(self, inputs, targets):
        return F.mse_loss(self.reconstruct(inputs), targets.flatten(1))

    def view_panels(self, batch, inputs, targets):
        return [ViewPanel("corrupted input", inputs), ViewPanel("target: clean", targets)]

    def reconstruction_panels(self, batch, inputs, targets):
        corrupted, clean = self.view_panels(batch, inputs, targets)
        return [corrupted, ViewPanel("reconstruction", self.reconstruct(inputs).view_as(inputs)), clean]

    @property
    def _level_name(self):
        return "std" if self.corrupt is augment.gaussian_noise else "fraction"


@register_method(
    "denoising",
    task="reconstruct the clean image from a corrupted one",
    paper="Vincent et al., JMLR 2010",
)
class DenoisingAEFeaturizer(BaseFeaturizer):
    """Denoising-autoencoder features as a scikit-learn transformer.

    Each training image is corrupted; the backbone encodes the corrupted image and
    an MLP decoder must reconstruct the clean one. The encoder's last stage gives
    the features.

    Parameters
    ----------
    noise : {"gaussian", "masking", "salt_pepper"}, default="masking"
        The corruption: additive Gaussian noise, pixels set to zero, or pixels set
        to black or white.
    noise_level : float, default=0.3
        Noise std on the [0, 1] pixel scale for ``"gaussian"``; the fraction of
        corrupted pixels otherwise.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    RotNetFeaturizer : features from predicting rotations.

    References
    ----------
    .. [1] Vincent et al., "Stacked Denoising Autoencoders", JMLR 11, 2010.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import DenoisingAEFeaturizer
    >>> X = load_digits().data[:100]
    >>> DenoisingAEFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 512)
    """

    noise: str = "masking"
    noise_level: float = 0.3

    _parameter_constraints = {
        "noise": [StrOptions(set(CORRUPTIONS))],
        "noise_level": [Interval(Real, 0, None, closed="left")],
    }

    def _build_task(self, backbone, context):
        if self.noise != "gaussian" and self.noise_level > 1:
            raise ValueError(
                f"noise_level is the fraction of corrupted pixels for noise={self.noise!r} "
                f"and must be at most 1, got {self.noise_level}."
            )
        return DenoisingTask(backbone, context.pool, noise=self.noise, noise_level=self.noise_level)
