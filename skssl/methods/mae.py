"""Masked autoencoders: hide most patches of an image and reconstruct their pixels.

- [0] He, Chen, Xie, Li, Dollár & Girshick, "Masked Autoencoders Are Scalable Vision
  Learners", CVPR 2022, arXiv:2111.06377.
"""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from .._panels import LEFT_OUT, ViewPanel
from ..backbones import Block, PatchEmbed, TokenNorm, grid_positions, init_vit_weights
from ..base import BaseFeaturizer
from ..losses import _in_float32
from ..registry import register_method
from ..task import PretextTask


def patchify(images, patch_size):
    """``(B, C, H, W)`` images -> ``(B, N, ph*pw*C)`` patches in row-major order.

    Each patch is flattened row by row, channels last, as in MAE's ``patchify``.
    ``H`` and ``W`` must be multiples of ``patch_size`` ``(ph, pw)``.
    """
    batch, channels, height, width = images.shape
    ph, pw = patch_size
    patches = images.reshape(batch, channels, height // ph, ph, width // pw, pw)
    return patches.permute(0, 2, 4, 3, 5, 1).reshape(batch, (height // ph) * (width // pw), ph * pw * channels)


def unpatchify(patches, patch_size, grid, channels):
    """The inverse of :func:`patchify`: ``(B, N, ph*pw*C)`` -> ``(B, C, h*ph, w*pw)``."""
    ph, pw = patch_size
    rows, columns = grid
    images = patches.reshape(len(patches), rows, columns, ph, pw, channels)
    return images.permute(0, 5, 1, 3, 2, 4).reshape(len(patches), channels, rows * ph, columns * pw)


def n_visible(n_patches, mask_ratio):
    """Patches the encoder sees: ``int(N (1 - mask_ratio))`` as in MAE, but at least one
    and at least one fewer than ``N``, so that something is seen and something is hidden
    (a one-patch image hides its only patch)."""
    return min(max(int(round(n_patches * (1 - mask_ratio), 6)), 1), n_patches - 1)


def random_shuffle(n_images, n_patches, generator, device):
    """An independent random order of the patches of every image, ``(B, N)``: MAE's
    "random sampling" [0] as an argsort of uniform noise. The first :func:`n_visible`
    patches of each row are shown, the rest are masked."""
    noise = torch.rand(n_images, n_patches, generator=generator, device=device)
    return noise.argsort(dim=1)


def hidden_patches(shuffle, keep):
    """``(B, N)`` float, 1 on the patches that :func:`random_shuffle`'s order ``shuffle``
    hides when the first ``keep`` are shown, 0 on those shown."""
    mask = torch.ones(shuffle.shape, device=shuffle.device)
    mask.scatter_(1, shuffle[:, :keep], 0.0)
    return mask


def gather_tokens(tokens, indices):
    """``tokens[b, indices[b]]`` for every image: ``(B, N, D)``, ``(B, K)`` -> ``(B, K, D)``."""
    return torch.gather(tokens, 1, indices[..., None].expand(-1, -1, tokens.shape[2]))


@_in_float32
def masked_patch_loss(prediction, target, mask, norm_pix_loss=False, eps=1e-6):
    """Mean squared error per patch, averaged over the masked patches only.

    "computes the mean squared error (MSE) between the reconstructed and original images
    in the pixel space. We compute the loss only on masked patches" [0]. With
    ``norm_pix_loss`` every target patch is first standardised by its own pixels' mean
    and standard deviation (population variance, so one-pixel patches stay finite).

    Parameters
    ----------
    prediction, target : Tensor of shape (B, N, P)
        Predicted and true pixels of every patch.
    mask : Tensor of shape (B, N)
        1 for masked patches, 0 for visible ones.
    norm_pix_loss : bool, default=False
    eps : float, default=1e-6
        Added to the variance, as in MAE.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    target = target.float()
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        variance = target.var(dim=-1, keepdim=True, correction=0)
        target = (target - mean) / (variance + eps).sqrt()
    per_patch = ((prediction.float() - target) ** 2).mean(dim=-1)  # (B, N)
    return (per_patch * mask).sum() / mask.sum()


class MAETask(PretextTask):
    """Mask most patches, encode the visible ones, decode all, score the masked ones.

    "Our MAE encoder is a ViT but applied only on visible, unmasked patches. [...] The
    input to the MAE decoder is the full set of tokens consisting of (i) encoded visible
    patches, and (ii) mask tokens" [0]. Targets are the standardised pixels the
    backbone sees.
    """

    def __init__(self, backbone, *, mask_ratio, norm_pix_loss, decoder_dim, decoder_depth, decoder_heads=4):
        super().__init__()
        stages = list(backbone.stages.children())
        if not (
            isinstance(stages[0], PatchEmbed)
            and all(isinstance(stage, Block) for stage in stages[1:-1])
            and isinstance(stages[-1], TokenNorm)
        ):
            raise ValueError(
                'MAEFeaturizer needs a ViT backbone: use backbone="vit_tiny" (sized with '
                'backbone_kwargs such as {"depth": 4, "patch_size": 2}); its encoder must '
                "run on the visible patches alone."
            )
        if decoder_dim % decoder_heads:
            raise ValueError(
                f"decoder_dim must be a multiple of {decoder_heads} (the decoder's heads), got {decoder_dim}."
            )
        self.backbone = backbone
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        patch_embed = stages[0]
        self.patch_size, self.grid = patch_embed.patch_size, patch_embed.grid
        n_pixels = patch_embed.patch_size[0] * patch_embed.patch_size[1] * backbone.in_shape[0]
        self.decoder_embed = nn.Linear(patch_embed.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        positions = grid_positions(decoder_dim, self.grid).flatten(1).T  # (N, decoder_dim)
        self.register_buffer("decoder_positions", positions[None], persistent=False)
        self.decoder = nn.Sequential(*[Block(decoder_dim, decoder_heads) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, n_pixels)
        init_vit_weights(nn.ModuleList([self.decoder_embed, self.decoder, self.decoder_pred]))
        nn.init.normal_(self.mask_token, std=0.02)

    def views(self, batch, generator, targets=None):
        n_patches = self.grid[0] * self.grid[1]
        return batch, random_shuffle(len(batch), n_patches, generator, batch.device)

    def loss(self, inputs, targets):
        return masked_patch_loss(*self.predict(inputs, targets), self.norm_pix_loss)

    def predict(self, inputs, shuffle):
        """The decoder's pixels ``(B, N, P)`` of every patch, the standardised pixels
        ``(B, N, P)`` it is scored against, and the mask ``(B, N)``, 1 where hidden.

        ``shuffle`` ``(B, N)`` is what :meth:`views` returned: each image's patches,
        visible ones first.
        """
        patch_embed, *blocks, norm = self.backbone.stages.children()
        images = patch_embed.pad((inputs - self.backbone.mean) / self.backbone.std)  # (B, C, H', W')
        tokens = patch_embed(images).flatten(2).transpose(1, 2)  # (B, N, D), positions added
        batch, n_patches, _ = tokens.shape
        keep = n_visible(n_patches, self.mask_ratio)
        latent = gather_tokens(tokens, shuffle[:, :keep])  # (B, K, D): the encoder sees these only
        for block in blocks:
            latent = block.tokens(latent)
        latent = self.decoder_embed(norm.tokens(latent))  # (B, K, Dd)
        mask_tokens = self.mask_token.expand(batch, n_patches - keep, -1).to(latent.dtype)
        full = torch.cat([latent, mask_tokens], dim=1)  # (B, N, Dd) in shuffled order
        full = gather_tokens(full, shuffle.argsort(dim=1)) + self.decoder_positions  # patch order
        for block in self.decoder:
            full = block.tokens(full)
        prediction = self.decoder_pred(self.decoder_norm(full))  # (B, N, P)
        return prediction, patchify(images, self.patch_size), hidden_patches(shuffle, keep)

    def view_panels(self, batch, inputs, targets):
        hidden = self._hidden_pixels(targets, inputs.shape[2:])  # (B, 1, H, W)
        keep = n_visible(targets.shape[1], self.mask_ratio)
        return [
            ViewPanel(f"{keep} of {targets.shape[1]} patches seen", inputs.where(~hidden, LEFT_OUT)),
            ViewPanel("target: hidden patches", inputs.where(hidden, LEFT_OUT)),
        ]

    def reconstruction_panels(self, batch, inputs, targets):
        seen, hidden_target = self.view_panels(batch, inputs, targets)
        prediction, standardised, _ = self.predict(inputs, targets)
        if self.norm_pix_loss:  # predicted in each patch's own units: shown in those of the true patch
            variance = standardised.var(dim=-1, keepdim=True, correction=0)
            prediction = prediction * (variance + 1e-6).sqrt() + standardised.mean(dim=-1, keepdim=True)
        channels, height, width = inputs.shape[1:]
        images = unpatchify(prediction, self.patch_size, self.grid, channels)[..., :height, :width]  # unpadded
        images = images * self.backbone.std + self.backbone.mean  # back to [0, 1]
        filled = images.where(self._hidden_pixels(targets, (height, width)), inputs)
        return [seen, ViewPanel("hidden patches predicted", filled), hidden_target]

    def _hidden_pixels(self, shuffle, size):
        """``(B, 1, H, W)``, True on the pixels of the patches hidden from the encoder."""
        hidden = hidden_patches(shuffle, n_visible(shuffle.shape[1], self.mask_ratio)).bool()
        pixels = hidden.view(len(shuffle), 1, *self.grid)
        pixels = pixels.repeat_interleave(self.patch_size[0], dim=2).repeat_interleave(self.patch_size[1], dim=3)
        return pixels[..., : size[0], : size[1]]  # patches of a padded image overhang it


@register_method(
    "mae",
    task="reconstruct masked patches with a ViT encoder",
    paper="He et al., CVPR 2022",
)
class MAEFeaturizer(BaseFeaturizer):
    """Masked-autoencoder features (MAE) as a scikit-learn transformer.

    Every image is cut into patches and three in four are hidden, at random for each
    image; a Vision Transformer encodes the visible patches alone, and a light
    decoder, given the encoded patches and a mask token in place of each hidden one,
    reconstructs the hidden pixels. Features are the encoder's tokens of the whole
    image (no masking), averaged (``pool="auto"``).

    Defaults suited to a CPU and digits differ from the paper's ImageNet settings: a
    4-block ViT-Tiny with 2-pixel patches on 8x8 images (4-pixel on 28x28 or 32x32)
    instead of ViT-B/L/H with 16-pixel patches; a decoder of 2 blocks of 128
    dimensions instead of 8 of 512; no class token; positions centred over the small
    grid (:func:`skssl.backbones.grid_positions`); pixel targets not normalised per
    patch (no gain seen on digits, whose 2x2 patches hold four pixels each); no
    learning-rate warm-up; at most 100 epochs instead of 800-1600. MAE learns slowly
    and its ViT costs 10-20x the small CNN's step, so ``max_epochs="auto"`` sets the
    epochs by the number of training images: as many as make 200,000 images' worth
    of steps, at most 100 (100 on 1,000 digits, 20 on 10,000 MNIST images: 525 s
    measured on two CPU cores). On 1,000 digits (seeds 0-2) a linear probe on its
    features scored 0.01-0.035 below the random network's after 30 epochs and
    0.035-0.05 above them (0.84-0.85) after 100.

    Only ViT backbones fit (``backbone="vit_tiny"`` or the stages it returns): the
    encoder must process the visible patches alone. Other backbones raise a
    ``ValueError``. Images of any size are accepted: patches are capped at the
    image's sides, sides that are not a multiple of the patch size are zero-padded,
    and at least one patch is always shown and one hidden (a one-patch image hides
    its only patch).

    Parameters
    ----------
    mask_ratio : float, default=0.75
        Fraction of each image's patches hidden from the encoder (75% in [1]).
    norm_pix_loss : bool, default=False
        Reconstruct each patch's pixels standardised by their own mean and standard
        deviation, which [1] found to give better features on ImageNet.
    decoder_dim : int, default=128
        Token dimension of the decoder (a multiple of 4).
    decoder_depth : int, default=2
        Transformer blocks of the decoder.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    DenoisingAEFeaturizer : features that let a decoder undo corruption.
    SimCLRFeaturizer : contrastive features from augmented views.

    References
    ----------
    .. [1] He, Chen, Xie, Li, Dollár & Girshick, "Masked Autoencoders Are Scalable
       Vision Learners", CVPR 2022, arXiv:2111.06377.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.mae import MAEFeaturizer
    >>> X = load_digits().data[:100]
    >>> MAEFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 192)
    """

    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    decoder_dim: int = 128
    decoder_depth: int = 2
    backbone: str | type | torch.nn.Module = "vit_tiny"
    max_epochs: int | str = "auto"

    _parameter_constraints = {
        "max_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "mask_ratio": [Interval(Real, 0, 1, closed="neither")],
        "norm_pix_loss": ["boolean"],
        "decoder_dim": [Interval(Integral, 1, None, closed="left")],
        "decoder_depth": [Interval(Integral, 0, None, closed="left")],
    }

    _auto_epochs = (200_000, 100)

    def _build_task(self, backbone, context):
        return MAETask(
            backbone,
            mask_ratio=self.mask_ratio,
            norm_pix_loss=self.norm_pix_loss,
            decoder_dim=self.decoder_dim,
            decoder_depth=self.decoder_depth,
        )
