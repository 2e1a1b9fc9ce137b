"""What every fit does before training: validate the images, pick the device, draw the
seeds, and build the network from a generator of its own (never torch's global one)."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state
from torch.overrides import TorchFunctionMode

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


class _DrawsFrom(TorchFunctionMode):
    """Hand ``generator`` to every random draw made on the CPU that names none.

    A function mode is thread-local: the draws of other threads, and torch's global
    generator, are untouched. A CPU generator seeded with ``s`` draws what the global
    one seeded with ``s`` would, so weights are those ``torch.manual_seed(s)`` gives.
    """

    SEEDABLE = frozenset(
        {
            torch.rand,
            torch.randn,
            torch.randint,
            torch.randperm,
            torch.normal,
            torch.bernoulli,
            torch.multinomial,
            torch.Tensor.uniform_,
            torch.Tensor.normal_,
            torch.Tensor.random_,
            torch.Tensor.bernoulli_,
            torch.Tensor.exponential_,
            torch.Tensor.geometric_,
            torch.Tensor.log_normal_,
            torch.Tensor.cauchy_,
            # nn.init hands its tensor over as a whole: the draws inside are not seen
            torch.nn.init.uniform_,
            torch.nn.init.normal_,
            torch.nn.init.trunc_normal_,
            torch.nn.init.kaiming_uniform_,
            torch.nn.init.kaiming_normal_,
            torch.nn.init.xavier_uniform_,
            torch.nn.init.xavier_normal_,
            torch.nn.init.orthogonal_,
            torch.nn.init.sparse_,
        }
    )
    UNSEEDABLE = frozenset({torch.rand_like, torch.randn_like, torch.randint_like, torch.dropout, F.dropout})

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self.SEEDABLE and kwargs.get("generator") is None and _on_cpu(args, kwargs):
            kwargs["generator"] = self.generator
        elif func in self.UNSEEDABLE:
            raise RuntimeError(
                f"{func.__name__} draws from torch's global generator while a network is built; "
                f"draw with an explicit generator (e.g. torch.rand(shape, generator=...))."
            )
        return func(*args, **kwargs)


def _on_cpu(args, kwargs):
    """Whether a draw lands on the CPU, where the CPU generator can make it."""
    target = args[0] if args and isinstance(args[0], torch.Tensor) else None
    device = target.device if target is not None else torch.device(kwargs.get("device") or "cpu")
    return device.type == "cpu"


def seeded(seed, build):
    """``build()`` with every random draw of the weights from a generator seeded by
    ``seed``: the same weights as under ``torch.manual_seed(seed)``, without touching
    torch's global generator, so that fits in threads neither disturb nor depend on
    each other or on the caller's draws."""
    with _DrawsFrom(torch.Generator().manual_seed(int(seed))):
        return build()
