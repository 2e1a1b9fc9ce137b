"""Backbones: networks cut into named stages.

Every backbone is an :class:`torch.nn.Sequential` of named stages (``conv1``,
``conv2``, ... or ``stem``, ``layer1``, ...). A featurizer's ``layer`` names the stage
whose output, pooled to a vector, becomes the features; pretext heads sit on top of
whichever stage their method needs.

- ``"small_cnn"``: the classic three-conv lab network, Conv64/s2 - pool - Conv32 -
  pool - Conv16/s2, with ReLU and batch norm. Its downsampling steps are skipped on
  an axis that is already smaller than 3 pixels, so the same network runs on 8x8
  digits (2x2 maps after ``conv2``) and on 28x28 MNIST (7x7, 3x3, 2x2, as in the lab).
- ``"resnet18"``: torchvision's ResNet-18 with a small-image stem (3x3 conv, stride 1,
  no max-pool), as used for CIFAR-sized inputs in the SSL literature. GPU territory.
- ``"mlp"``: two fully connected stages, for rows that are not really images.
- an ``nn.Module`` subclass (instantiated with ``backbone_kwargs``) or instance: an
  ``nn.Sequential`` contributes its children as stages; any other module is one
  stage named ``"output"``.
"""

import copy
import inspect
from collections import OrderedDict

import torch
from torch import nn

BACKBONES = ("small_cnn", "resnet18", "mlp")


def _downsample(size, factor=2):
    """Stride for one axis: halve it unless it is already tiny."""
    return factor if size >= 3 else 1


def small_cnn(in_shape, *, widths=(64, 32, 16), batch_norm=True):
    """The classic rotation-lab network as three named conv stages.

    Parameters
    ----------
    in_shape : tuple of int
        ``(C, H, W)`` of the input images.
    widths : tuple of 3 ints, default=(64, 32, 16)
        Output channels of ``conv1``, ``conv2``, ``conv3``.
    batch_norm : bool, default=True
        Batch norm after each convolution.

    Returns
    -------
    nn.Sequential
        Stages ``conv1``, ``conv2``, ``conv3``.

    Examples
    --------
    >>> import torch
    >>> net = small_cnn((1, 28, 28))
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 16, 2, 2])
    """
    channels, height, width = in_shape
    stages = OrderedDict()
    for index, out_channels in enumerate(widths):
        # conv1 and conv3 stride 2; conv1 and conv2 are followed by a 2x2 max-pool.
        stride = (_downsample(height), _downsample(width)) if index != 1 else (1, 1)
        layers = [nn.Conv2d(channels, out_channels, 3, stride, 1, bias=not batch_norm)]
        height, width = -(-height // stride[0]), -(-width // stride[1])
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        if index != 2:
            pool = (_downsample(height), _downsample(width))
            if pool != (1, 1):
                layers.append(nn.MaxPool2d(pool, pool))
            height, width = height // pool[0], width // pool[1]
        stages[f"conv{index + 1}"] = nn.Sequential(*layers)
        channels = out_channels
    return nn.Sequential(stages)


def resnet18(in_shape):
    """ResNet-18 with a stem for small images (3x3 conv, stride 1, no max-pool).

    Examples
    --------
    >>> import torch
    >>> net = resnet18((3, 32, 32))
    >>> list(dict(net.named_children()))
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    """
    from torchvision.models import resnet18 as torchvision_resnet18

    net = torchvision_resnet18(num_classes=1)
    stem = nn.Sequential(
        nn.Conv2d(in_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False),
        net.bn1,
        net.relu,
    )
    return nn.Sequential(
        OrderedDict(
            stem=stem, layer1=net.layer1, layer2=net.layer2, layer3=net.layer3, layer4=net.layer4
        )
    )


def mlp(in_shape, *, hidden=(512, 256)):
    """Fully connected stages ``fc1``, ``fc2``, ... on the flattened image.

    Examples
    --------
    >>> import torch
    >>> mlp((1, 8, 8))(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 256])
    """
    stages = OrderedDict()
    n_inputs = in_shape[0] * in_shape[1] * in_shape[2]
    for index, n_units in enumerate(hidden):
        layers = [nn.Flatten()] if index == 0 else []
        layers += [nn.Linear(n_inputs, n_units), nn.BatchNorm1d(n_units), nn.ReLU(inplace=True)]
        stages[f"fc{index + 1}"] = nn.Sequential(*layers)
        n_inputs = n_units
    return nn.Sequential(stages)


def _user_stages(backbone, kwargs):
    if inspect.isclass(backbone):
        module = backbone(**kwargs)
    else:
        module = copy.deepcopy(backbone)  # the caller's module is never trained
    if isinstance(module, nn.Sequential) and len(module) > 0:
        return module
    return nn.Sequential(OrderedDict(output=module))


def build_stages(backbone, in_shape, backbone_kwargs=None):
    """Build ``backbone`` for images of ``in_shape`` ``(C, H, W)`` as named stages."""
    kwargs = dict(backbone_kwargs or {})
    if isinstance(backbone, str):
        builders = {"small_cnn": small_cnn, "resnet18": resnet18, "mlp": mlp}
        if backbone not in builders:
            raise ValueError(
                f"Unknown backbone {backbone!r}; use one of {BACKBONES}, an nn.Module "
                f"subclass or an nn.Module instance."
            )
        try:
            return builders[backbone](tuple(in_shape), **kwargs)
        except TypeError as exc:
            raise TypeError(f"backbone_kwargs {kwargs} do not fit {backbone!r}: {exc}") from exc
    if isinstance(backbone, nn.Module) or (
        inspect.isclass(backbone) and issubclass(backbone, nn.Module)
    ):
        return _user_stages(backbone, kwargs)
    raise TypeError(
        f"backbone must be one of {BACKBONES}, an nn.Module subclass or instance; "
        f"got {backbone!r}."
    )


def pool(feature_map, how):
    """Pool a stage's output to one vector per image: ``"avg"`` or ``"flatten"``."""
    if feature_map.ndim > 2 and how == "avg":
        return feature_map.mean(dim=tuple(range(2, feature_map.ndim)))
    return feature_map.flatten(1)


class Backbone(nn.Module):
    """Named stages behind a per-channel standardisation of [0, 1] images.

    Parameters
    ----------
    stages : nn.Sequential
        Named stages, as returned by :func:`build_stages`.
    in_shape : tuple of int
        ``(C, H, W)`` of the input images.
    mean, std : sequence of float
        Per-channel statistics of the training images on the [0, 1] scale.
    """

    def __init__(self, stages, in_shape, mean, std):
        super().__init__()
        self.stages = stages
        self.in_shape = tuple(in_shape)
        shape = (1, len(mean), 1, 1)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(shape))

    @property
    def stage_names(self):
        return [name for name, _ in self.stages.named_children()]

    def forward(self, x, upto=None):
        """Feature map of stage ``upto`` (default: the last) for images ``x`` in [0, 1]."""
        x = (x - self.mean) / self.std  # (B, C, H, W)
        for name, stage in self.stages.named_children():
            x = stage(x)
            if name == upto:
                break
        return x

    def pooled_size(self, how, upto=None):
        """Length of the pooled output of stage ``upto`` (default: the last)."""
        training = self.training
        self.eval()
        with torch.no_grad():
            probe = torch.zeros(1, *self.in_shape, device=self.mean.device)
            size = pool(self(probe, upto=upto), how).shape[1]
        self.train(training)
        return size
