"""Colorization: learn features by predicting the colours of a grayscale image.

- [0] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511.
"""

import weakref
from abc import abstractmethod
from numbers import Real

import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from .._data import to_tensor
from .._training import to_unit
from ..backbones import Backbone, build_stages, pool
from ..base import BaseFeaturizer, PretextTask, _fill_docstring
from ..color import AB_LIMIT, ab_bins, densify, rebalancing_weights, rgb_to_lab, sparse_encode_ab
from ..losses import rebalanced_cross_entropy

GRID = 4  # colour targets: the mean colour of each cell of a grid of at most GRID x GRID cells


def target_grid(height, width):
    """``(h, w)`` cells of the targets for an image (or half image) of ``height x width``."""
    return min(height, GRID), min(width, GRID)


def split_halves(x):
    """Left and right halves ``(B, C, H, ceil(W / 2))``; an odd width's middle column is in both."""
    half = -(-x.shape[3] // 2)
    return x[..., :half], x[..., x.shape[3] - half:]


class CellDecoder(nn.Module):
    """Predict ``n_outputs`` values for each cell of a ``grid`` from pooled features.

    A linear layer lays out a ``cell_dim``-dimensional code for every cell, and a 1x1
    convolution shared by the cells turns each code into the cell's outputs, as the
    last 1x1 convolution of [0] does per pixel.
    """

    def __init__(self, n_features, n_outputs, grid, cell_dim=32):
        super().__init__()
        self.grid = tuple(grid)
        self.cell_dim = cell_dim
        self.codes = nn.Linear(n_features, cell_dim * self.grid[0] * self.grid[1])
        self.outputs = nn.Conv2d(cell_dim, n_outputs, 1)

    def forward(self, features):
        codes = F.relu(self.codes(features)).view(len(features), self.cell_dim, *self.grid)  # (B, D, h, w)
        return self.outputs(codes)  # (B, n_outputs, h, w)


class ColorSpaceBackbone(Backbone):
    """Sub-networks on groups of an image's channels, with :class:`Backbone`'s interface.

    Images in [0, 1] go through a colour conversion and a per-channel standardisation,
    then each sub-network gets its group; a stage's output is the concatenation, along
    channels, of the sub-networks' outputs of that stage. ``split`` says how:

    - ``"lightness"``: RGB to Lab, one sub-network on L (Colorization);
    - ``"lab"``: RGB to Lab, one sub-network on L and one on ab (split-brain);
    - ``"halves"``: no conversion, one sub-network on the left half of every channel and
      one on the right half (split-brain on grayscale images).

    Parameters
    ----------
    branches : list of nn.Sequential
        The sub-networks, with the same stage names.
    in_shape : tuple of int
        ``(C, H, W)`` of the input images.
    mean, std : sequence of float
        Per-channel statistics of the converted images (Lab for ``"lightness"`` and
        ``"lab"``) used to standardise them.
    split : {"lightness", "lab", "halves"}
    """

    def __init__(self, branches, in_shape, mean, std, *, split):
        super().__init__(nn.ModuleList(branches), in_shape, mean, std)
        self.split = split

    @staticmethod
    def branch_shapes(in_shape, split):
        """``(C, H, W)`` of each sub-network's input."""
        channels, height, width = in_shape
        if split == "lightness":
            return [(1, height, width)]
        if split == "lab":
            return [(1, height, width), (2, height, width)]
        return [(channels, height, -(-width // 2))] * 2

    @classmethod
    def build(cls, backbone, backbone_kwargs, in_shape, mean, std, *, split):
        """Build one sub-network per channel group from the backbone given by name or module."""
        shapes = cls.branch_shapes(in_shape, split)
        branches = [build_stages(backbone, shape, backbone_kwargs) for shape in shapes]
        return cls(branches, in_shape, mean, std, split=split)

    @property
    def stage_names(self):
        return [name for name, _ in self.stages[0].named_children()]

    def stage_modules(self, name):
        return [branch.get_submodule(name) for branch in self.stages]

    def groups(self, x):
        """Every sub-network's standardised input for images ``x`` in [0, 1]."""
        if self.split != "halves":
            x = rgb_to_lab(x)  # (B, 3, H, W)
        x = (x - self.mean) / self.std
        if self.split == "lightness":
            return [x[:, :1]]
        if self.split == "lab":
            return [x[:, :1], x[:, 1:]]
        return list(split_halves(x))

    def branch_outputs(self, x, upto=None):
        """Each sub-network's feature map of stage ``upto`` (default: the last)."""
        outputs = []
        for stages, group in zip(self.stages, self.groups(x)):
            for name, stage in stages.named_children():
                group = stage(group)
                if name == upto:
                    break
            outputs.append(group)
        return outputs

    def forward(self, x, upto=None):
        """The sub-networks' feature maps of stage ``upto``, concatenated along channels."""
        return torch.cat(self.branch_outputs(x, upto), dim=1)

    def branch_pooled_sizes(self, how, upto=None):
        """Length of each sub-network's pooled output of stage ``upto``."""
        training = self.training
        self.eval()
        with torch.no_grad():
            probe = torch.zeros(1, *self.in_shape, device=self.mean.device)
            sizes = [pool(output, how).shape[1] for output in self.branch_outputs(probe, upto)]
        self.train(training)
        return sizes


def check_batch_norm_can_train(backbone, n_images, name):
    """Refuse one training image when a stage keeps one value per channel for it: batch
    norm cannot normalise a single value (sklearn's checks fit 1 x n "images")."""
    if n_images != 1:
        return
    training = backbone.training
    backbone.eval()
    with torch.no_grad():
        probe = torch.zeros(1, *backbone.in_shape, device=backbone.mean.device)
        sizes = [
            output[0, 0].numel()  # values per channel
            for stage in backbone.stage_names
            for output in backbone.branch_outputs(probe, stage)
        ]
    backbone.train(training)
    if min(sizes) == 1:
        raise ValueError(
            f"{name} cannot train on n_samples=1 image this small: a stage of its "
            f"sub-networks keeps one value per channel, which batch norm cannot normalise "
            f"over one image. Pass at least 2 images."
        )


def lab_channel_stats(data, value_range, device, chunk=4096):
    """Mean and std of L, a and b over RGB training images (a tensor or an array), chunk by chunk."""
    total = torch.zeros(3, dtype=torch.float64, device=device)
    squares = torch.zeros_like(total)
    for start in range(0, len(data), chunk):
        rows = data[start:start + chunk]
        rows = rows if isinstance(rows, torch.Tensor) else to_tensor(rows, device)
        lab = rgb_to_lab(to_unit(rows.to(device), value_range)).double()
        total += lab.sum(dim=(0, 2, 3))
        squares += (lab**2).sum(dim=(0, 2, 3))
    count = data.shape[0] * data.shape[2] * data.shape[3]
    mean = total / count
    std = (squares / count - mean**2).clamp(min=0).sqrt().clamp(min=1e-3)
    return mean.float().view(1, 3, 1, 1), std.float().view(1, 3, 1, 1)


class ColorSpaceMixin:
    """For featurizers whose backbone is a :class:`ColorSpaceBackbone`: builds it, and
    standardises Lab inputs with the training set's Lab statistics."""

    @abstractmethod
    def _split(self):
        """The ``split`` of the backbone for the training images' ``image_shape_``."""

    def _make_backbone(self, mean, std):
        return ColorSpaceBackbone.build(
            self.backbone, self.backbone_kwargs, self.image_shape_, mean, std, split=self._split()
        )

    def _initial_task(self, images, data, device, seed):
        task = super()._initial_task(images, data, device, seed)
        backbone = task.backbone
        if backbone.split != "halves":  # the RGB statistics it was built with do not apply
            mean, std = lab_channel_stats(data, self.value_range_, backbone.mean.device)
            backbone.mean.copy_(mean)
            backbone.std.copy_(std)
        return task


def _ab_cells(batch, grid):
    """The mean ab colour of every cell, ``(B, 2, h, w)``, of [0, 1] RGB images."""
    return F.adaptive_avg_pool2d(rgb_to_lab(batch)[:, 1:], grid)


class ColorizationTask(PretextTask):
    """See the lightness, predict the colours: classification over ab bins, or regression.

    "Given an input lightness channel X, our objective is to learn a mapping Ŷ = F(X)
    to the two associated color channels Y" [0]; the colours are predicted as a
    distribution over the quantized ab bins, trained with a cross-entropy in which
    "each pixel is weighed by factor w, based on its closest ab bin" [0].
    """

    def __init__(self, backbone, pool_how, *, objective, soft_encoding, rebalancing):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.objective = objective
        self.soft_encoding = soft_encoding
        self.rebalancing = rebalancing
        self.grid = target_grid(*backbone.in_shape[1:])
        n_bins = len(ab_bins())
        n_outputs = n_bins if objective == "classification" else 2
        self.decoder = CellDecoder(backbone.pooled_size(pool_how), n_outputs, self.grid)
        self.register_buffer("class_weights", torch.ones(n_bins))  # fitted in start_epoch

    @torch.no_grad()
    def start_epoch(self, images, value_range, generator, chunk=4096):
        """Encode the colour targets of the whole training set and set the rebalancing
        weights from them, once per set (the targets of an image never change).

        Returns the per-image targets that :meth:`views` would build, which the loop
        then hands to :meth:`forward` with each batch.
        """
        check_batch_norm_can_train(self.backbone, len(images), "ColorizationFeaturizer")
        cached = self.__dict__.get("_targets")  # a plain attribute: not saved with the model
        if cached is not None:
            finalizer, targets = cached
            if finalizer.alive and finalizer.peek()[0] is images:
                return targets
            finalizer.detach()  # another set: its end must not drop the new targets
        device = self.class_weights.device
        targets = []
        for start in range(0, len(images), chunk):
            rows = images[start:start + chunk]
            rows = rows if isinstance(rows, torch.Tensor) else to_tensor(rows, device)
            targets.append(self._targets_of(to_unit(rows.to(device), value_range)))
        targets = torch.cat(targets)
        if self.objective == "classification" and self.rebalancing != 1:
            nearest = targets[:, 0].long()  # (n, h, w): the bin of the highest weight
            counts = torch.bincount(nearest.flatten(), minlength=len(self.class_weights))
            self.class_weights.copy_(rebalancing_weights(counts.float(), lam=self.rebalancing))
        finalizer = weakref.finalize(images, self.__dict__.pop, "_targets", None)  # gone with the set
        self.__dict__["_targets"] = (finalizer, targets)
        return targets

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_targets", None)
        return state

    def _targets_of(self, batch):
        """The packed targets of [0, 1] RGB images: the cells' ab over ``AB_LIMIT`` for
        regression, else their bins' indices (as floats) then weights, ``(B, 2K, h, w)``."""
        ab = _ab_cells(batch, self.grid)  # (B, 2, h, w)
        if self.objective == "regression":
            return ab / AB_LIMIT
        index, weight = sparse_encode_ab(ab, soft=self.soft_encoding)
        return torch.cat([index.float(), weight], dim=1)

    def views(self, batch, generator):
        return batch, self._targets_of(batch)

    def forward(self, batch, generator, targets=None):
        if targets is None:
            return super().forward(batch, generator)
        return self.loss(batch, targets)

    def loss(self, inputs, targets):
        predicted = self.decoder(pool(self.backbone(inputs), self.pool_how))  # (B, Q or 2, h, w)
        if self.objective == "regression":
            return F.mse_loss(predicted.float(), targets)
        index, weight = targets.chunk(2, dim=1)
        return rebalanced_cross_entropy(predicted, densify(index.long(), weight), self.class_weights)


@_fill_docstring
class ColorizationFeaturizer(ColorSpaceMixin, BaseFeaturizer):
    """Colorization features as a scikit-learn transformer.

    Every colour image is converted to CIE Lab; the backbone sees only the lightness
    L and a small MLP head predicts the colours ab. By default, as in [1], the colours
    are classes: the ab plane is cut into 10 x 10 bins (the 262 that sRGB colours
    reach), targets are soft-encoded over the 5 nearest bins and rare colours are
    weighted up (class rebalancing). The backbone's last stage gives the features, of
    the lightness alone, as the network never sees colour.

    Differences from [1], for small images on a CPU: the colours are predicted for a
    grid of at most 4 x 4 cells (the mean colour of each cell) from the pooled
    features of the last stage, instead of per pixel at a quarter of the resolution;
    the colour prior of the rebalancing weights is counted on the training images.

    Colour images are required: grayscale input raises a ``ValueError``.

    Parameters
    ----------
    objective : {"classification", "regression"}, default="classification"
        ``"classification"`` over the ab bins with a cross-entropy [1]; ``"regression"``
        of the ab values (divided by 110) with a squared error, the baseline of [1].
    soft_encoding : bool, default=True
        Spread each target colour over its 5 nearest bins with a Gaussian kernel
        (sigma = 5) [1]; False puts it all on the nearest bin. Classification only.
    rebalancing : float, default=0.5
        ``λ`` of [1]: the weight of every bin is inversely proportional to a mix of the
        smoothed colour prior (``1 - λ``) and the uniform distribution (``λ``), in
        (0, 1]; 1 turns rebalancing off. Classification only.
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s

    See Also
    --------
    SplitBrainFeaturizer : two sub-networks predicting L from ab and ab from L.
    DenoisingAEFeaturizer : features that let a decoder undo corruption.

    References
    ----------
    .. [1] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016.

    Examples
    --------
    >>> from skssl.datasets import load_sample_patches
    >>> from skssl.methods.colorization import ColorizationFeaturizer
    >>> X, _ = load_sample_patches(16, 100, random_state=0)
    >>> ColorizationFeaturizer(max_epochs=1, random_state=0).fit_transform(X).shape
    (100, 64)
    """

    _parameter_constraints = {
        **BaseFeaturizer._parameter_constraints,
        "objective": [StrOptions({"classification", "regression"})],
        "soft_encoding": ["boolean"],
        "rebalancing": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(
        self,
        *,
        objective="classification",
        soft_encoding=True,
        rebalancing=0.5,
        backbone="small_cnn",
        backbone_kwargs=None,
        layer="auto",
        pool="auto",
        max_epochs=30,
        batch_size=64,
        learning_rate=1e-3,
        weight_decay=1e-4,
        device="auto",
        precision="auto",
        compile=False,
        image_shape=None,
        random_state=None,
        verbose=0,
        warm_start=False,
        tol=1e-4,
        n_iter_no_change=None,
        checkpoint_dir=None,
        checkpoint_every=1,
    ):
        self._store_parameters(locals())

    def _split(self):
        return "lightness"

    def _build_task(self, backbone, pool_how):
        channels = self.image_shape_[0]
        if channels != 3:  # checked after the layer, so that bad parameters are named first
            raise ValueError(
                f"ColorizationFeaturizer needs colour (RGB) images, with 3 channels, to "
                f"predict colour from lightness; got images with {channels} channel(s) of "
                f"shape (C, H, W)={tuple(self.image_shape_)}. Pass (n, H, W, 3) arrays, or "
                f"flat rows with image_shape=(height, width, 3); for grayscale images use "
                f"another featurizer, e.g. SplitBrainFeaturizer."
            )
        return ColorizationTask(
            backbone,
            pool_how,
            objective=self.objective,
            soft_encoding=self.soft_encoding,
            rebalancing=self.rebalancing,
        )
