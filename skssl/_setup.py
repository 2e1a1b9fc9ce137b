"""What every fit does before training: validate the images, pick the device, draw the
seeds, and build the network seeded without touching the global RNG."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from sklearn.utils import check_random_state

from . import _distributed
from ._data import check_images, to_tensor


def resolve_device(device):
    """``device`` as a ``torch.device``; ``"auto"`` is CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine; use device='auto' or 'cpu'.")
    return resolved


@dataclass
class FitSetup:
    """The validated training images and what a fit draws before training."""

    images: np.ndarray  # (n, C, H, W), validated, in the caller's dtype
    device: torch.device
    seeds: list  # independent integer seeds: the model's first, then the data's, ...
    streamed: bool  # a memmap: read from disk a batch at a time

    @cached_property
    def data(self):
        """The images on the device, moved once on first use; a memmap stays on disk."""
        return self.images if self.streamed else to_tensor(self.images, self.device)


def prepare_fit(estimator, X, *, reset, image_shape, n_seeds=2):
    """Validate ``X`` (setting ``n_features_in_`` and ``image_shape_`` when ``reset``),
    join a torchrun process group, and draw ``n_seeds`` seeds from ``random_state``."""
    images = check_images(estimator, X, reset=reset, image_shape=image_shape)
    device = resolve_device(estimator.device)
    _distributed.init_from_environment(device)  # under torchrun: join the process group
    device = _distributed.local_device(device)
    seeds = check_random_state(estimator.random_state).randint(0, 2**31 - 1, size=n_seeds)
    return FitSetup(images, device, [int(seed) for seed in seeds], streamed=isinstance(X, np.memmap))


def seeded(seed, build):
    """``build()`` with the global torch RNG seeded by ``seed``, then restored:
    modules draw their initial weights from it, and the user's RNG stays as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()
