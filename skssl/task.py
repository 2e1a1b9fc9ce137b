"""The contract between a pretext method and the training loop every method shares.

A method is a :class:`PretextTask` (a backbone, a head, a loss on views made from a
batch) and an estimator whose ``_build_task(backbone, context)`` returns it. The loop
(:func:`skssl._training.train`) calls, in this order:

1. :meth:`PretextTask.start_training` once per fit, before a resumed run's state is
   loaded: check the data, compute what stays fixed for the run;
2. :meth:`PretextTask.start_epoch` before every epoch;
3. ``task(batch, generator, targets)`` for every batch, which makes the
   :meth:`~PretextTask.views` and returns the :meth:`~PretextTask.loss`;
4. :meth:`PretextTask.after_step` after every optimizer step (momentum encoders).

Per-image targets reach ``views`` from the loop: those the classifier was given
(labels, soft labels), those ``start_training`` returns for the whole run, or those
``start_epoch`` returns for one epoch (the latest wins). State that a task updates
itself, such as a queue of keys, is updated in ``loss`` under ``torch.no_grad()``
after the loss has read what it needs (a copy, since autograd keeps the inputs of the
backward pass).

Two optional hooks show what a task does, for :mod:`skssl.plotting`:
:meth:`PretextTask.view_panels` turns what ``views`` made of a batch into labelled
images, and :meth:`PretextTask.reconstruction_panels` adds the network's
reconstruction for the methods that reconstruct their input. Neither changes the task.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from ._panels import ViewPanel, image_panels


@dataclass(frozen=True)
class BuildContext:
    """What a method's ``_build_task`` knows about the data it will train on.

    Attributes
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of the training images.
    working_shape : tuple of int
        ``(C, H, W)`` the backbone works at (images under the method's minimum side
        are enlarged to it).
    pool : str
        How a stage's feature map becomes a vector (``"flatten"`` or ``"avg"``).
    n_images : int or None
        Training images; None when the task is rebuilt to load saved weights.
    value_range : tuple of float or None
        Raw values mapped to 0 and 1; None when rebuilt for saved weights.
    images : Tensor, ndarray or None
        The raw training set ``(n, C, H, W)`` on ``device`` (a memmap stays on disk),
        for statistics a method computes once; None when rebuilt for saved weights.
    device : torch.device
        Where the task trains.
    mean, std : list of float
        Per-channel mean and standard deviation of the [0, 1]-scaled training
        images (0 and 1 when rebuilt for saved weights).
    """

    image_shape: tuple
    working_shape: tuple
    pool: str
    n_images: int | None = None
    value_range: tuple | None = None
    images: Any = None
    device: torch.device = torch.device("cpu")
    mean: tuple = ()
    std: tuple = ()


class PretextTask(torch.nn.Module, ABC):
    """A pretext task: a backbone, a head, and a loss on views made from a batch.

    Subclasses set ``self.backbone`` (a :class:`skssl.backbones.Backbone`) in
    ``__init__`` and implement :meth:`views` and :meth:`loss`; the split lets
    benchmarks time the model step apart from view construction. The other hooks
    are optional.
    """

    @abstractmethod
    def views(self, batch: torch.Tensor, generator: torch.Generator, targets: torch.Tensor | None = None) -> tuple:
        """``(inputs, targets)`` for a batch of [0, 1] images ``(B, C, H, W)``.

        ``targets`` are the per-image targets the loop holds for the batch, or
        None; a task that makes its own targets from the views ignores them.
        """

    @abstractmethod
    def loss(self, inputs: Any, targets: Any) -> torch.Tensor:
        """Scalar loss of the network on prepared ``inputs``."""

    def forward(
        self, batch: torch.Tensor, generator: torch.Generator, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The loss of a batch: :meth:`views`, then :meth:`loss`."""
        return self.loss(*self.views(batch, generator, targets))

    def start_training(self, images: Any, value_range: tuple, generator: torch.Generator) -> torch.Tensor | None:
        """Called once per fit, before a resumed run's state is loaded, with the whole
        raw training set. Checks the data, drops state tied to an earlier training
        set, and may return per-image targets ``(n, ...)`` fixed for the run (which
        the loop hands to :meth:`views` with each batch). Returns None by default."""
        return None

    def start_epoch(self, images: Any, value_range: tuple, generator: torch.Generator) -> torch.Tensor | None:
        """Called before every epoch with the whole raw training set; may return
        per-image targets ``(n,)`` for the epoch (DeepCluster's pseudo-labels).
        Returns None by default."""
        return None

    def after_step(self, progress: float) -> None:
        """Called after every optimizer step with the fraction of training done
        (momentum encoders update here); does nothing by default."""

    def parameter_groups(self) -> list[dict] | None:
        """The optimizer's parameter groups, ``[{"params", "lr_scale"}, ...]``, or None
        for one group of every trainable parameter (the default)."""
        return None

    def view_panels(self, batch: torch.Tensor, inputs: Any, targets: Any) -> list[ViewPanel]:
        """What :meth:`views` made of ``batch``, as labelled images (for
        :func:`skssl.plotting.plot_views`); the task is left as it was.

        Parameters
        ----------
        batch : Tensor of shape (B, C, H, W)
            The [0, 1] images handed to :meth:`views`.
        inputs, targets
            What :meth:`views` returned for them.

        Returns
        -------
        panels : list of ViewPanel
            By default every tensor of images among ``inputs`` and ``targets``
            (``(k * B, C, H, W)`` gives ``k`` panels), captioned with integer labels
            ``(k * B,)`` or ``(B,)`` among the targets. A task whose views hold
            something else (indices, masks, packed codes) overrides this to show them.
        """
        n_images = len(batch)
        panels = image_panels("input", inputs, n_images, labels=targets)
        return panels + image_panels("target", targets, n_images)

    def reconstruction_panels(self, batch: torch.Tensor, inputs: Any, targets: Any) -> list[ViewPanel] | None:
        """The network's reconstruction next to its input and target, as labelled
        images (for :func:`skssl.plotting.plot_reconstructions`), or None (the default)
        for a task that reconstructs nothing. Called under ``torch.no_grad()`` in eval
        mode with what :meth:`views` returned for ``batch``."""
        return None
