"""The base class every featurizer shares: parameters, ``fit``, ``transform``."""

import copy
import os
import warnings
from pathlib import Path
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _checkpoint, _distributed, _persistence
from ._data import check_images, to_tensor, value_range
from ._training import autocast, chunks, to_unit, train
from .augment import resize
from .backbones import BACKBONES, Backbone, build_stages, pool

COMMON_PARAMETERS_DOC = """\
    backbone : {"small_cnn", "resnet18", "vit_tiny", "mlp"}, nn.Module subclass or \
instance, default="small_cnn"
        The network to pretrain. ``"small_cnn"`` is the classic 3-conv lab network;
        ``"resnet18"`` a ResNet-18 with a small-image stem (use a GPU); ``"vit_tiny"``
        a small vision transformer with patches sized for small images. A module
        class is instantiated with ``backbone_kwargs``; an ``nn.Sequential``'s children
        are its stages. See :mod:`skssl.backbones`.
    backbone_kwargs : dict, default=None
        Keyword arguments for the backbone builder, e.g. ``{"widths": (32, 32, 32)}``.
    layer : str or int, default="auto"
        The backbone stage whose output gives the features (a name such as
        ``"conv2"``, or an index). ``"auto"`` takes the method's usual choice.
    pool : {"auto", "flatten", "avg"}, default="auto"
        How a stage's feature map becomes a vector: ``"flatten"`` keeps the spatial
        layout (the classic lab), ``"avg"`` averages it away. ``"auto"`` flattens for
        ``"small_cnn"`` and ``"mlp"`` and averages otherwise.
    max_epochs : int
        Passes over the training images; ``0`` keeps the random initial weights.
    batch_size : int
        Source images per training step (views and rotations come on top).
    learning_rate : float, default=1e-3
        Peak AdamW learning rate, decayed to zero by a cosine schedule.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train and embed; ``"auto"`` picks CUDA when available.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and embedding. ``"bfloat16"`` runs the network under
        bfloat16 autocast (losses and colour conversions stay float32); ``"auto"``
        uses it on CUDA and float32 on the CPU. On CPUs with native bfloat16
        (AVX512-BF16, AMX) ``"bfloat16"`` is faster there too; elsewhere it is slower.
    compile : bool, default=False
        Compile the pretext model with ``torch.compile`` for training (needs a C++
        compiler on the CPU; the first steps pay the compilation). It pays off for
        large networks on a GPU; the small CNN on a CPU runs faster uncompiled.
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of flat rows, or the
        layout of 4-D input. ``None`` infers square grayscale images from flat rows;
        rows that are not square are then treated as ``1 x n_columns`` signals.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and augmentation. On CPU the same
        integer gives bit-identical embeddings; the global torch RNG is untouched.
    verbose : int, default=0
        Print the loss of every epoch when > 0.
    warm_start : bool, default=False
        When True, ``fit`` resumes the run saved in ``checkpoint_dir`` if there is
        one (up to ``max_epochs`` in all, giving the same weights as an uninterrupted
        run); otherwise a fitted featurizer trains ``max_epochs`` more epochs.
    tol : float, default=1e-4
        Loss improvement that counts for early stopping.
    n_iter_no_change : int, default=None
        Stop when the epoch loss has not improved by ``tol`` for this many epochs
        (a ``ConvergenceWarning`` says when it was still improving at the end).
        None trains all ``max_epochs``.
    checkpoint_dir : str or path, default=None
        Where to keep ``checkpoint.pt``, the state of the run (weights, optimizer,
        schedule, random generator, history), rewritten atomically.
    checkpoint_every : int, default=1
        Epochs between checkpoints (the last epoch is always saved)."""

COMMON_ATTRIBUTES_DOC = """\
    n_features_in_ : int
        Values per image seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images.
    value_range_ : tuple of float
        Raw values mapped to 0 and 1 (0..255 for uint8, else the training min/max).
    layer_ : str
        The stage that gives the features.
    pool_ : str
        The pooling in use.
    task_ : nn.Module
        The trained pretext model: ``task_.backbone`` plus the method's head.
    history_ : list of dict
        ``{"epoch", "loss", "seconds"}`` for every epoch run.
    n_iter_ : int
        Epochs run."""


# Under this many pixels the small CNN's conv1 leaves 1-2 pixel maps, and 8x8 digits
# give their rotation away by their aspect; methods that opt in work on smaller images
# enlarged to it (see ``BaseFeaturizer._min_working_side``).
MIN_WORKING_SIDE = 16


def _fill_docstring(cls):
    # the placeholder carries the first line's indent; the templates carry the rest
    cls.__doc__ = cls.__doc__.replace("%(common_parameters)s", COMMON_PARAMETERS_DOC.lstrip()).replace(
        "%(common_attributes)s", COMMON_ATTRIBUTES_DOC.lstrip()
    )
    return cls


def _resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available on this machine; use "
            f"device='auto' or 'cpu'."
        )
    return resolved


class PretextTask(torch.nn.Module, ABC):
    """A pretext task: a backbone, a head, and a loss on views made from a batch.

    Subclasses set ``self.backbone`` and implement :meth:`views` and :meth:`loss`;
    the split lets benchmarks time the model step apart from view construction.
    """

    @abstractmethod
    def views(self, batch, generator):
        """``(inputs, targets)`` for a batch of [0, 1] images ``(B, C, H, W)``."""

    @abstractmethod
    def loss(self, inputs, targets):
        """Scalar loss of the network on prepared ``inputs``."""

    def forward(self, batch, generator):
        return self.loss(*self.views(batch, generator))

    def start_epoch(self, images, value_range, generator):
        """Called before every epoch with the whole raw training set; may return
        per-image targets ``(n,)`` for the epoch, which the loop then hands to
        ``forward`` with each batch (DeepCluster's pseudo-labels). Returns None by default."""
        return None

    def after_step(self, progress):
        """Called after every optimizer step with the fraction of training done
        (momentum encoders update here); does nothing by default."""


class TorchModelMixin:
    """What every skssl estimator with a trained ``task_`` shares: the ``pool="auto"``
    rule and pickling, which stores ``task_`` on the CPU so that a model fitted on a
    GPU loads on a machine without one (and goes back to the GPU where there is one)."""

    def _resolve_pool(self):
        if self.pool != "auto":
            return self.pool
        return "flatten" if self.backbone in ("small_cnn", "mlp") else "avg"

    def __getstate__(self):
        state = super().__getstate__()
        task = state.get("task_")
        if task is not None and task.backbone.mean.device.type != "cpu":
            state["task_"] = copy.deepcopy(task).cpu()
            state["fitted_device_"] = str(task.backbone.mean.device)
        return state

    def __setstate__(self, state):
        fitted_device = state.pop("fitted_device_", None)
        super().__setstate__(state)
        if fitted_device is not None:
            if torch.cuda.is_available():
                self.task_.to(fitted_device)
            else:
                warnings.warn(
                    f"This {type(self).__name__} was fitted on {fitted_device}; CUDA is "
                    f"not available here, so it runs on the CPU.",
                    UserWarning,
                    stacklevel=2,
                )


class BaseFeaturizer(TorchModelMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Pretext-train a backbone on unlabeled images; transform images to its features.

    Subclasses declare their parameters in ``__init__`` and fill one hook,
    :meth:`_build_task`; the data path, seeding, the training loop, feature
    extraction and persistence are shared.
    """

    _parameter_constraints = {
        "backbone": [StrOptions(set(BACKBONES)), type, torch.nn.Module],
        "backbone_kwargs": [dict, None],
        "layer": [str, Integral],
        "pool": [StrOptions({"auto", "flatten", "avg"})],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
        "compile": ["boolean"],
        "image_shape": [tuple, list, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
    }

    def _store_parameters(self, parameters):
        """Store ``__init__``'s arguments unchanged, as scikit-learn requires."""
        for name, value in parameters.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    @abstractmethod
    def _build_task(self, backbone, pool_how):
        """Return the method's :class:`PretextTask` around ``backbone``."""

    def _auto_layer(self, stage_names):
        """The stage ``layer="auto"`` reads; the last one unless a method knows better."""
        return stage_names[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Pretext-train on the unlabeled images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_pixels) or an image array
            Flat rows, ``(n, H, W)``, ``(n, H, W, C)`` or ``(n, C, H, W)``.
        y : None
            Ignored: pretext training uses no labels.

        Returns
        -------
        self : object
            The fitted featurizer.
        """
        if isinstance(self.backbone, torch.nn.Module):
            warnings.warn(
                "backbone is an nn.Module instance: every clone deep-copies it and the "
                "copies hash differently, so Pipeline(memory=...) and other joblib "
                "caches never reuse a fitted featurizer. Pass the module's class (with "
                "backbone_kwargs) or a backbone name instead.",
                UserWarning,
                stacklevel=3,
            )
        continuing = self.warm_start and hasattr(self, "task_")
        images = check_images(self, X, reset=not continuing, image_shape=self.image_shape)
        device = _resolve_device(self.device)
        _distributed.init_from_environment(device)  # under torchrun: join the process group
        device = _distributed.local_device(device)
        model_seed, data_seed = check_random_state(self.random_state).randint(0, 2**31 - 1, size=2)
        # the whole set moves to the device once; a memmap stays on disk and is read per batch
        data = images if isinstance(X, np.memmap) else to_tensor(images, device)
        resume = self._read_checkpoint() if self.warm_start else None
        if continuing and resume is None:  # train the fitted weights further
            task, history = self._trainable_task().to(device), self.history_
        else:
            if hasattr(self, "task_"):
                del self.task_  # a failed fit must not leave the old model looking fitted
            task, history = self._initial_task(images, data, device, model_seed), []
        generator = torch.Generator(device).manual_seed(int(data_seed) + len(history))
        new_history = train(
            task,
            data,
            value_range=self.value_range_,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            generator=generator,
            verbose=self.verbose,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            resume=resume,
            on_epoch_end=self._write_checkpoint if self.checkpoint_dir is not None else None,
            device=device,
            precision=self.precision,
            compile=self.compile,
        )
        task.requires_grad_(False).eval()
        self.task_ = task
        self._fit_interrupted = new_history.interrupted  # read by FineTunedClassifier
        self.history_ = history + [{**h, "epoch": h["epoch"] + len(history)} for h in new_history]
        self.n_iter_ = len(self.history_)
        self._n_features_out = self._embed(images[:1], self.layer_).shape[1]
        return self

    def _initial_task(self, images, data, device, seed):
        """Build the method's task around a freshly initialised backbone."""
        self.value_range_ = value_range(images)
        mean, std = _channel_stats(data, self.value_range_, device)
        with torch.random.fork_rng(devices=[]):  # seed the weights, leave the global RNG be
            torch.manual_seed(int(seed))
            task = self._make_task(mean, std)
        return task.to(device)

    def _trainable_task(self):
        """A copy of the fitted ``task_`` that trains again: each parameter requires
        grad as in a newly built task (a momentum target stays out of the optimizer)."""
        task = copy.deepcopy(self.task_)
        fresh = dict(copy.copy(self)._empty_task().named_parameters())  # self stays as it is
        for name, parameter in task.named_parameters():
            parameter.requires_grad_(fresh[name].requires_grad)
        return task

    def _empty_task(self):
        """The task's architecture, for weights loaded from a file."""
        channels = self.image_shape_[0]
        return self._make_task([0.0] * channels, [1.0] * channels)

    #: Methods that set this (to ``MIN_WORKING_SIDE``) enlarge images whose longer side
    #: is shorter, by the smallest integer factor that reaches it, in ``fit`` and
    #: ``transform`` alike.
    _min_working_side = None

    def _working_shape(self):
        """``(C, H, W)`` the backbone works at: the training images' own, or enlarged
        (bilinear, integer factor, aspect kept) to ``_min_working_side``."""
        if self._min_working_side is None:
            return self.image_shape_
        channels, height, width = self.image_shape_
        factor = -(-self._min_working_side // max(height, width))  # ceil
        return (channels, height * factor, width * factor) if factor > 1 else self.image_shape_

    def _is_enlarged(self):
        """Whether the backbone works on enlarged images."""
        return tuple(self._working_shape()) != tuple(self.image_shape_)

    def _make_backbone(self, mean, std):
        """The backbone the task trains: ``backbone`` built for :meth:`_working_shape`."""
        shape = self._working_shape()
        stages = build_stages(self.backbone, shape, self.backbone_kwargs)
        return Backbone(stages, shape, mean, std)

    def _make_task(self, mean, std):
        backbone = self._make_backbone(mean, std)
        self.layer_ = self._resolve_layer(backbone.stage_names)
        self.pool_ = self._resolve_pool()
        task = self._build_task(backbone, self.pool_)
        return task.to(memory_format=torch.channels_last)  # ~1.7x faster convs on CPU

    def save(self, path):
        """Save the fitted featurizer to ``path`` without pickle; read it with :func:`skssl.load`.

        The file holds the weights as tensors and the parameters and fitted
        attributes as JSON; loading it runs no code. Backbones must be given by name.
        """
        check_is_fitted(self)
        _persistence.save(self, path)

    def _checkpoint_path(self):
        return Path(self.checkpoint_dir) / "checkpoint.pt"

    def _write_checkpoint(self, state):
        """Write the run's state every ``checkpoint_every`` epochs, atomically."""
        _checkpoint.write(
            self._checkpoint_path(),
            state,
            every=self.checkpoint_every,
            max_epochs=self.max_epochs,
            meta={"image_shape": list(self.image_shape_)},
        )

    def _read_checkpoint(self):
        """The state saved in ``checkpoint_dir``, or None when there is none."""
        if self.checkpoint_dir is None:
            return None
        return _checkpoint.read(self._checkpoint_path(), meta={"image_shape": list(self.image_shape_)})

    def __sklearn_is_fitted__(self):
        return hasattr(self, "task_")

    def transform(self, X):
        """Embed images with the frozen backbone.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out), dtype float32
        """
        check_is_fitted(self)
        images = check_images(self, X, reset=False, image_shape=self.image_shape)
        return self._embed(images, self.layer_)

    def _embed(self, images, layer, batch_size=512):
        """Pooled features of ``layer`` for NCHW ``images``, streamed in batches."""
        backbone = self.task_.backbone
        device = backbone.mean.device
        size = backbone.in_shape[1:]  # the working size: images are enlarged to it
        features = None
        with torch.inference_mode(), autocast(device, getattr(self, "precision", "auto")):
            for start in range(0, len(images), batch_size):
                batch = to_unit(to_tensor(images[start:start + batch_size], device), self.value_range_)
                batch = resize(batch, size)
                chunk = pool(backbone(batch, upto=layer), self.pool_).float().cpu().numpy()
                if features is None:  # filled in place: peak memory is the output plus one batch
                    features = np.empty((len(images), chunk.shape[1]), dtype=np.float32)
                features[start:start + len(chunk)] = chunk
        return features

    def _resolve_layer(self, stage_names):
        if self.layer == "auto":
            return self._auto_layer(stage_names)
        if isinstance(self.layer, str):
            if self.layer not in stage_names:
                raise ValueError(
                    f"layer={self.layer!r} is not a stage of this backbone; use 'auto' or "
                    f"one of {stage_names}."
                )
            return self.layer
        if not -len(stage_names) <= self.layer < len(stage_names):
            raise ValueError(
                f"layer={self.layer} is out of range for the {len(stage_names)} stages "
                f"{stage_names}."
            )
        return stage_names[self.layer]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = self.random_state is None
        return tags


def _channel_stats(data, value_range, device, chunk=4096):
    """Per-channel mean and std of the [0, 1]-scaled images, without a float copy of all."""
    total = torch.zeros(data.shape[1], dtype=torch.float64, device=device)
    squares = torch.zeros_like(total)
    for rows in chunks(data, device, chunk):
        unit = to_unit(rows, value_range).double()
        total += unit.sum(dim=(0, 2, 3))
        squares += (unit**2).sum(dim=(0, 2, 3))
    count = data.shape[0] * data.shape[2] * data.shape[3]
    mean = total / count
    std = (squares / count - mean**2).clamp(min=0).sqrt()
    return mean.cpu().tolist(), std.clamp(min=1e-3).cpu().tolist()
