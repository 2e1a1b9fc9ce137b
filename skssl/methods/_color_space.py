"""What the colour methods share: a backbone of sub-networks on groups of an image's
channels (in CIE Lab or in halves), its construction and statistics, and a head that
predicts values for a grid of cells.

- [0] Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511.
"""

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from .._data import to_tensor
from .._training import to_unit
from ..backbones import Backbone, build_stages, pool
from ..color import ab_bins, lab_to_rgb, rgb_to_lab

GRID = 4  # colour targets: the mean colour of each cell of a grid of at most GRID x GRID cells


def target_grid(height, width):
    """``(h, w)`` cells of the targets for an image (or half image) of ``height x width``."""
    return min(height, GRID), min(width, GRID)


def split_halves(x):
    """Left and right halves ``(B, C, H, ceil(W / 2))``; an odd width's middle column is in both."""
    half = -(-x.shape[3] // 2)
    return x[..., :half], x[..., x.shape[3] - half :]


def lightness(batch):
    """The lightness L of [0, 1] RGB images as [0, 1] gray images ``(B, 1, H, W)``."""
    return rgb_to_lab(batch)[:, :1] / 100


def cell_colours(batch, ab, grid):
    """RGB images ``(B, 3, h, w)`` of the cells of ``grid``: the mean lightness of each
    cell of the [0, 1] RGB ``batch`` with the colour ``ab`` ``(B, 2, h, w)``."""
    lab = torch.cat([F.adaptive_avg_pool2d(rgb_to_lab(batch)[:, :1], grid), ab], dim=1)
    return lab_to_rgb(lab)


def bin_colours(index):
    """The ab colours ``(B, 2, h, w)`` of ab bin indices ``(B, h, w)``."""
    return ab_bins().to(index.device)[index].permute(0, 3, 1, 2)


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
        rows = data[start : start + chunk]
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

    def _make_backbone(self, context):
        backbone = ColorSpaceBackbone.build(
            self.backbone, self.backbone_kwargs, self.image_shape_, context.mean, context.std, split=self._split()
        )
        if backbone.split != "halves" and context.images is not None and context.image_shape[0] == 3:
            # the RGB statistics do not apply: standardise with those of Lab (other
            # images are refused by the task, after the parameters have been checked)
            mean, std = lab_channel_stats(context.images, context.value_range, context.device)
            backbone.mean.copy_(mean)
            backbone.std.copy_(std)
        return backbone
