"""CPC: predict the codes of the patches below from the patches above.

- [0] van den Oord, Li & Vinyals, "Representation Learning with Contrastive Predictive
  Coding", 2018, arXiv:1807.03748.
- [1] Hénaff et al., "Data-Efficient Image Recognition with Contrastive Predictive
  Coding" (CPC v2), ICML 2020, arXiv:1905.09272.
"""

from numbers import Integral

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from .._panels import ViewPanel, mosaic
from ..augment import resize
from ..backbones import pool
from ..base import MIN_WORKING_SIDE, BaseFeaturizer
from ..losses import cpc_info_nce
from ..registry import register_method
from ..task import PretextTask
from ._tiles import normalize_tiles


def prediction_offsets(rows, n_predictions):
    """Rows ahead to predict: ``n_predictions`` of them from the first row whose patches
    do not overlap the context's row (2 rows below, as patches overlap by half), as
    [1]'s pseudo-code skips the nearest rows; from 1 on a 2-row grid.

    Examples
    --------
    >>> prediction_offsets(6, 3), prediction_offsets(3, 3), prediction_offsets(2, 3)
    ([2, 3, 4], [2], [1])
    """
    first = 2 if rows > 2 else 1
    return list(range(first, min(first + n_predictions, rows)))


MIN_SIZE = 8  # pixels; smaller sides are resized up to at least this for the pretext task


def auto_patch(size):
    """Patch side for an image side: about 7 half-overlapping patches, at least 4 pixels.

    [0] cuts 256-pixel images into a 7x7 grid of 64-pixel patches with 32 pixels of
    overlap; the same proportion gives 8-pixel patches on 28-pixel MNIST (6 rows) and
    4-pixel patches on 8-pixel digits (3 rows).

    Examples
    --------
    >>> [auto_patch(size) for size in (8, 16, 28, 32, 256)]
    [4, 4, 8, 8, 64]
    """
    return max(4, 2 * round(size / 8))


def patch_grid(batch, patch, stride):
    """Cut every image into a grid of patches of ``patch`` (height, width) pixels,
    ``stride`` (vertical, horizontal) apart: one ``unfold`` per axis over the batch.

    Returns patches ``(B, R, Q, C, height, width)`` for ``R`` rows and ``Q`` columns.

    Examples
    --------
    >>> import torch
    >>> patch_grid(torch.zeros(2, 1, 8, 8), (4, 4), (2, 2)).shape
    torch.Size([2, 3, 3, 1, 4, 4])
    """
    tiles = batch.unfold(2, patch[0], stride[0]).unfold(3, patch[1], stride[1])  # (B, C, R, Q, h, w)
    return tiles.permute(0, 2, 3, 1, 4, 5)


class CausalRowConv(nn.Module):
    """A convolution over the grid of codes whose output at row ``i`` sees rows ``<= i``.

    The kernel covers the row itself and the one above, three columns wide: a
    PixelCNN-style vertical stack, masked by padding only above.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3))

    def forward(self, x):
        return self.conv(F.pad(x, (1, 1, 1, 0)))  # pad left, right, top; (B, D, R, Q)


class CPCTask(PretextTask):
    """Patch codes from the backbone, a causal context over rows, InfoNCE on rows below.

    Every image is cut into a grid of overlapping patches, each normalised
    (:func:`~skssl.methods._tiles.normalize_tiles`) and encoded on its own into
    a code ``z_{i,j}`` (the backbone's last stage, average-pooled as in [0]). "A masked
    convolutional network is then applied to the grid of feature vectors", masked so
    that "the receptive field of each resulting context vector c_{i,j} only includes
    feature vectors that lie above it in the image" [1]: here three convolutions with
    a kernel of two rows by three columns, padded only above, so the context of row
    ``i`` sees rows ``i - 3 .. i`` (a GRU would summarise whole rows and lose the
    columns). As in [1]'s pseudo-code, the targets are a linear map of the codes, the
    predictions ``W_k c_{i,j}`` are scaled by 0.1, and each is scored by the
    log-bilinear ``z^T W_k c`` [0] against every patch target of the batch: "the
    negative samples are taken from other locations in the image and other images in
    the mini-batch" [1]. The loss averages over the ``offsets`` ``k``.
    """

    def __init__(self, backbone, *, size, patch, stride, offsets, target_dim=64, context_dim=128):
        super().__init__()
        self.backbone = backbone
        self.size, self.patch, self.stride = size, patch, stride  # (height, width) in pixels
        self.offsets = tuple(offsets)
        code_dim = backbone.pooled_size("avg")
        self.context = nn.Sequential(
            CausalRowConv(code_dim, context_dim),
            nn.ReLU(inplace=True),
            CausalRowConv(context_dim, context_dim),
            nn.ReLU(inplace=True),
            CausalRowConv(context_dim, context_dim),
        )
        self.targets = nn.Conv2d(code_dim, target_dim, kernel_size=1)
        self.predictors = nn.Conv2d(context_dim, target_dim * len(offsets), kernel_size=1)  # W_k
        self.target_dim = target_dim

    def views(self, batch, generator, targets=None):
        batch = resize(batch, self.size)  # small images: up to the grid's size
        return batch, None  # the patches are cut in loss, where the grid is needed

    def view_panels(self, batch, inputs, targets):
        patches = patch_grid(inputs, self.patch, self.stride)  # (B, R, Q, C, h, w), as codes() cuts them
        rows, columns = patches.shape[1:3]
        return [
            ViewPanel("input", inputs),
            ViewPanel(f"{rows}x{columns} patches", mosaic(patches.flatten(1, 2), (rows, columns))),
        ]

    def patch_features(self, images, layer=None, how="avg"):
        """Every patch of a batch of (resized) images, normalised and encoded on its own:
        the output of stage ``layer`` pooled as ``how`` says, ``(B, rows, columns, D)``."""
        patches = normalize_tiles(patch_grid(images, self.patch, self.stride))  # (B, R, Q, C, h, w)
        n, rows, columns = patches.shape[:3]
        z = pool(self.backbone(patches.flatten(0, 2), upto=layer), how)  # (B*R*Q, D)
        return z.view(n, rows, columns, -1)

    def codes(self, images):
        """Patch codes ``(B, D, rows, columns)`` of a batch of (resized) images."""
        return self.patch_features(images).permute(0, 3, 1, 2)

    def predictions(self, inputs):
        """For every offset ``k``: the predictions ``(N_k, T)`` of the targets ``k`` rows
        below, all the patch targets ``(B*R*Q, T)`` and the index of each positive."""
        z = self.codes(inputs)  # (B, D, R, Q)
        n, _, rows, columns = z.shape
        dim = self.target_dim
        predicted = 0.1 * self.predictors(self.context(z))  # (B, K*T, R, Q)
        candidates = self.targets(z).permute(0, 2, 3, 1).reshape(-1, dim)  # (B*R*Q, T), row-major
        index = torch.arange(len(candidates), device=z.device).view(n, rows, columns)
        for step, k in enumerate(self.offsets):
            p = predicted[:, step * dim : (step + 1) * dim, : rows - k]  # (B, T, R-k, Q): from row i
            positive = index[:, k:].reshape(-1)  # the target of row i + k, same column
            yield p.permute(0, 2, 3, 1).reshape(-1, dim), candidates, positive

    def loss(self, inputs, targets):
        losses = [cpc_info_nce(*pair) for pair in self.predictions(inputs)]
        return sum(losses) / len(losses)


@register_method(
    "cpc",
    task="predict the codes of patches below from the context above",
    paper="van den Oord et al., 2018; Henaff et al., 2020",
)
class CPCFeaturizer(BaseFeaturizer):
    """Contrastive-predictive-coding features (CPC) as a scikit-learn transformer.

    Every training image is cut into a grid of half-overlapping patches; the backbone
    encodes each patch on its own into a code (its last stage, average-pooled), a
    masked convolutional network summarises the rows above, and from that context the
    network must pick out the codes of patches further down among all the patch
    codes of the batch (InfoNCE). ``transform`` reads the grid of patches, as [2]'s
    linear evaluation does: every patch is normalised and encoded on its own, as in
    training, and the patches' features (``layer``, pooled as ``pool`` says) are
    concatenated in row-major order ([2] averages them over the grid, which loses
    where each code sits: 7 points lower on MNIST), 36 patches x 128 = 4,608
    features on 28x28 MNIST and 9 x 128 = 1,152 on 8x8 digits. ``readout="image"``
    runs the backbone on the whole image instead, like the other featurizers (512
    features); fine-tuning (:class:`~skssl.FineTunedClassifier`) always does. The
    context network and the predictors (``task_.context``, ``task_.predictors``) only
    serve the pretext task.

    Patches are ``patch_size`` pixels a side with a stride of half that, and each is
    normalised to zero mean and unit deviation on its own before it is encoded, so
    that how much ink a patch holds does not single it out. Images whose longer side
    is under 16 pixels are enlarged (bilinear) by the smallest integer factor that
    reaches 16, in ``fit`` and ``transform`` alike: 8x8 digits work at 16x16, cut into
    3 rows of 8-pixel patches (the 4-pixel patches of the digits themselves hold a
    stroke or two). Images smaller than 8 pixels on a side are resized up to 8 for the
    pretext task, and further where the backbone needs larger patches than a 3-row
    grid of the image allows.

    Encoding every patch on its own makes CPC's step the costliest of the CNN methods
    (about 420 images/s on two CPU cores with ``wide_cnn`` on 28x28 images), so
    ``max_epochs="auto"`` sets the epochs by the number of training images: as many as
    make 200,000 images' worth of steps, at most 30 (30 on 1,000 digits, 20 on 10,000
    MNIST images: 417 s measured on two CPU cores, 4 on 60,000).

    Differences from [2]: the backbone keeps its batch norm ([2] uses layer norm, as
    batch statistics mix patches), no per-patch augmentation, only top-to-bottom
    predictions, three masked convolutions as the context network, and the negatives
    come from this process's share of the batch only under ``torchrun``.

    Parameters
    ----------
    n_predictions : int, default=3
        Rows ahead to predict, starting 2 rows below the context's row (the first
        whose patches do not overlap it; 1 row on a 2-row grid) and as far as the
        grid goes: rows 2, 3 and 4 on MNIST's 6-row grid, row 2 on the 3-row grid of
        8x8 digits (enlarged to 16x16). [2]'s pseudo-code predicts 3 rows below on a
        7x7 grid.
    patch_size : int or "auto", default="auto"
        Patch side in pixels. ``"auto"`` takes ``max(4, 2 round(side / 8))`` on each
        axis, [1]'s proportion of 64-pixel patches on 256-pixel images (8 pixels on
        28x28 MNIST), or the smallest larger size that the backbone takes
        (``small_cnn`` built for 16x16 images, such as enlarged digits, needs 8).
        An integer must leave at least 2 rows of patches.
    readout : {"patches", "image"}, default="patches"
        What ``transform`` encodes: each patch of the grid, as in training, with the
        patches' features concatenated, or the whole image. On MNIST the patches'
        linear probe gained about 4 points over the whole image's, and twice as much
        over random-init features (``benchmarks/RESULTS.md``).
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    SimCLRFeaturizer : contrastive features from augmented views of whole images.
    RotNetFeaturizer : features from predicting rotations.

    References
    ----------
    .. [1] van den Oord, Li & Vinyals, "Representation Learning with Contrastive
       Predictive Coding", arXiv:1807.03748, 2018.
    .. [2] Hénaff et al., "Data-Efficient Image Recognition with Contrastive
       Predictive Coding", ICML 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.methods.cpc import CPCFeaturizer
    >>> X = load_digits().data[:100]
    >>> CPCFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 1152)
    """

    n_predictions: int = 3
    patch_size: str = "auto"
    readout: str = "patches"
    max_epochs: int | str = "auto"

    _parameter_constraints = {
        "max_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "n_predictions": [Interval(Integral, 1, None, closed="left")],
        "patch_size": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "readout": [StrOptions({"patches", "image"})],
    }

    _min_working_side = MIN_WORKING_SIDE
    _auto_epochs = (200_000, 30)
    _earlier_parameters = {"readout": "image"}  # models saved before the grid read-out

    def _build_task(self, backbone, context):
        size, patch = self._grid(backbone)
        stride = (max(1, patch[0] // 2), max(1, patch[1] // 2))
        rows = (size[0] - patch[0]) // stride[0] + 1
        return CPCTask(
            backbone,
            size=size,
            patch=patch,
            stride=stride,
            offsets=prediction_offsets(rows, self.n_predictions),
        )

    def _batch_features(self, batch, layer):
        if self.readout == "image":
            return super()._batch_features(batch, layer)
        task = self.task_
        return task.patch_features(resize(batch, task.size), layer, self.pool_).flatten(1)

    @property
    def _n_features_out(self):
        if self.readout == "image":
            return super()._n_features_out
        task = self.task_
        blank = torch.zeros(1, task.backbone.in_shape[0], *task.size, device=task.backbone.mean.device)
        with torch.inference_mode():
            return self._batch_features(blank, self.layer_).shape[1]

    def _grid(self, backbone):
        """The pretext image size and the patch size, both (height, width)."""
        channels, height, width = backbone.in_shape  # the working size
        size = (max(height, MIN_SIZE), max(width, MIN_SIZE))
        if self.patch_size != "auto":
            patch = (self.patch_size, self.patch_size)
            largest = max(p for p in range(1, min(size) + 1) if p + max(1, p // 2) <= size[0])
            if self.patch_size > largest:
                raise ValueError(
                    f"patch_size={self.patch_size} leaves fewer than 2 rows of patches in "
                    f"the {size[0]}x{size[1]} images CPC cuts (small images are enlarged "
                    f"first); use patch_size='auto' or at most {largest}."
                )
            if not _takes(backbone, channels, patch):
                raise ValueError(
                    f"patch_size={self.patch_size} is too small for this backbone, whose "
                    f"downsampling needs larger inputs; use patch_size='auto'."
                )
            return size, patch
        # the proportional patch, or the smallest larger one that the backbone takes
        # (small_cnn built for 16x16 images needs 8x8), or at last the image's own size
        first = tuple(auto_patch(side) for side in size)
        candidates = [(first[0] + grow, first[1] + grow) for grow in range(0, max(size), 2)]
        patch = next((p for p in [*candidates, (height, width)] if _takes(backbone, channels, p)), None)
        if patch is None:
            raise ValueError(
                f"This backbone takes no input smaller than the {height}x{width} images "
                f"nor those; CPC needs one that encodes image patches."
            )
        return (max(size[0], 2 * patch[0]), max(size[1], 2 * patch[1])), patch  # >= 3 rows


def _takes(backbone, channels, patch):
    """Whether ``backbone`` runs on inputs of ``patch`` (height, width) pixels."""
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, channels, *patch, device=backbone.mean.device))
        return True
    except RuntimeError:
        return False
    finally:
        backbone.train(training)
