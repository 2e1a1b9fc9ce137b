"""The estimator every featurizer shares: parameters, ``fit``, ``transform``, ``embed``.

A method subclasses :class:`BaseFeaturizer`, declares its own parameters as annotated
class attributes (see :mod:`skssl._parameters`) and fills one hook,
:meth:`BaseFeaturizer._build_task`, which returns its :class:`~skssl.task.PretextTask`.
The data path, seeding, the training loop, feature extraction, checkpoints and
persistence are shared.
"""

import copy
import warnings
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from ._checkpoint import CheckpointMixin
from ._data import check_finite_outputs, check_images, value_range
from ._parameters import NetworkParameters, RuntimeParameters, TrainingParameters
from ._persistence import SavedModelMixin
from ._setup import prepare_fit, seeded
from ._training import autocast, channel_stats, train, unit_batches
from .augment import resize
from .backbones import Backbone, build_stages, pool
from .task import BuildContext, PretextTask

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# Under this many pixels the small CNN's conv1 leaves 1-2 pixel maps, and 8x8 digits
# give their rotation away by their aspect; methods that opt in work on smaller images
# enlarged to it (see ``BaseFeaturizer._min_working_side``).
MIN_WORKING_SIDE = 16


def stage_before_last(stage_names):
    """``layer="auto"`` of the methods whose last stage specialises in their pretext
    task (RotNet, counting): the stage before it, or the only one."""
    return stage_names[-2] if len(stage_names) > 1 else stage_names[-1]


class BackboneFeatures(
    SavedModelMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
    NetworkParameters,
    RuntimeParameters,
):
    """Features of a backbone's stage: the network built for the images, ``transform``
    and ``embed``, persistence. :class:`BaseFeaturizer` adds pretext training;
    :class:`~skssl.RandomFeaturizer` keeps the random initial weights."""

    layer: str | int = "auto"

    _parameter_constraints = {"layer": [str, Integral]}
    _saved_attributes = (*SavedModelMixin._saved_attributes, "pool_")

    #: Methods that set this (to ``MIN_WORKING_SIDE``) enlarge images whose longer side
    #: is shorter, by the smallest integer factor that reaches it, in ``fit`` and
    #: ``transform`` alike.
    _min_working_side = None

    def _build_task(self, backbone: Backbone, context: BuildContext) -> PretextTask:
        """Return the method's :class:`~skssl.task.PretextTask` around ``backbone``.

        Parameters
        ----------
        backbone : Backbone
            Freshly initialised, built for ``context.working_shape``.
        context : BuildContext
            The data the task will train on (see :class:`skssl.task.BuildContext`).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _build_task(backbone, context).")

    def _auto_layer(self, stage_names):
        """The stage ``layer="auto"`` reads; the last one unless a method knows better."""
        return stage_names[-1]

    def _initial_task(self, setup, seed):
        """The method's task around a freshly initialised backbone, for the images of ``setup``."""
        self.value_range_ = value_range(setup.images)
        mean, std = channel_stats(setup.data, self.value_range_, setup.device)
        context = self._context(
            n_images=len(setup.images),
            value_range=self.value_range_,
            images=setup.data,
            device=setup.device,
            mean=mean,
            std=std,
        )
        return seeded(seed, lambda: self._make_task(context)).to(setup.device)

    def _context(self, **data):
        """The :class:`BuildContext` of the fitted image shape, plus what is known of the data."""
        channels = self.image_shape_[0]
        data = {"mean": [0.0] * channels, "std": [1.0] * channels, **data}
        return BuildContext(
            image_shape=tuple(self.image_shape_),
            working_shape=tuple(self._working_shape()),
            pool=self._resolve_pool(),
            **data,
        )

    def untrained_task(self) -> PretextTask:
        """The fitted task's architecture with fresh weights, for weights loaded from a file.

        Returns
        -------
        task : PretextTask
            On the CPU, built from the fitted attributes (``image_shape_``, ...).
        """
        return seeded(0, lambda: self._make_task(self._context()))  # never the global RNG

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

    def _make_backbone(self, context):
        """The backbone the task trains: ``backbone`` built for the working shape."""
        stages = build_stages(self.backbone, context.working_shape, self.backbone_kwargs)
        return Backbone(stages, context.working_shape, context.mean, context.std)

    def _make_task(self, context):
        backbone = self._make_backbone(context)
        self.layer_ = self._resolve_layer(backbone.stage_names)
        self.pool_ = context.pool
        task = self._build_task(backbone, context)
        return task.to(memory_format=torch.channels_last)  # ~1.7x faster convs on CPU

    @property
    def _n_features_out(self):
        return self.task_.backbone.pooled_size(self.pool_, self.layer_)

    def transform(self, X: "ArrayLike") -> np.ndarray:
        """Embed images with the frozen backbone.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out), dtype float32
        """
        return self.embed(X)

    def embed(self, X: "ArrayLike", layer: str | None = None, *, batch_size: int = 512) -> np.ndarray:
        """Pooled features of any backbone stage, streamed in batches.

        :meth:`transform` is ``embed(X)``; :func:`skssl.evaluation.layerwise_probe`
        reads every stage this way.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.
        layer : str, default=None
            A stage of ``task_.backbone.stage_names``; None is ``layer_``.
        batch_size : int, default=512
            Images per forward pass.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), dtype float32

        Raises
        ------
        ValueError
            If the features of some images overflow to NaN or infinity (values far
            beyond the range seen in ``fit``); the message names those rows.

        Examples
        --------
        >>> from sklearn.datasets import load_digits
        >>> from skssl import RotNetFeaturizer
        >>> X = load_digits().data[:50]
        >>> featurizer = RotNetFeaturizer(max_epochs=1, random_state=0).fit(X)
        >>> featurizer.embed(X, layer="conv1").shape
        (50, 512)
        """
        check_is_fitted(self)
        images = check_images(self, X, reset=False, image_shape=self.image_shape)
        features = self._embed(images, self.layer_ if layer is None else self._resolve_layer_name(layer), batch_size)
        return check_finite_outputs(self, features, images)

    def _embed(self, images, layer, batch_size=512):
        """Pooled features of ``layer`` for validated NCHW ``images``."""
        device = self.task_.backbone.mean.device
        features, start = None, 0
        with torch.inference_mode(), autocast(device, self.precision):
            for batch in unit_batches(images, device, self.value_range_, batch_size):
                chunk = self._batch_features(batch, layer).float().cpu().numpy()
                if features is None:  # filled in place: peak memory is the output plus one batch
                    features = np.empty((len(images), chunk.shape[1]), dtype=np.float32)
                features[start : start + len(chunk)] = chunk
                start += len(chunk)
        return features

    def _batch_features(self, batch, layer):
        """The features of a batch of [0, 1] images: the backbone's ``layer`` on the
        whole image (enlarged to the working size), pooled as ``pool_`` says."""
        backbone = self.task_.backbone
        return pool(backbone(resize(batch, backbone.in_shape[1:]), upto=layer), self.pool_)

    def _resolve_layer_name(self, layer):
        names = self.task_.backbone.stage_names
        if layer not in names:
            raise ValueError(f"layer={layer!r} is not a stage of this backbone; use one of {names}.")
        return layer

    def _resolve_layer(self, stage_names):
        if self.layer == "auto":
            return self._auto_layer(stage_names)
        if isinstance(self.layer, str):
            if self.layer not in stage_names:
                raise ValueError(
                    f"layer={self.layer!r} is not a stage of this backbone; use 'auto' or one of {stage_names}."
                )
            return self.layer
        if not -len(stage_names) <= self.layer < len(stage_names):
            raise ValueError(f"layer={self.layer} is out of range for the {len(stage_names)} stages {stage_names}.")
        return stage_names[self.layer]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = self.random_state is None
        return tags


class BaseFeaturizer(CheckpointMixin, BackboneFeatures, TrainingParameters):
    """Pretext-train a backbone on unlabeled images; transform images to its features.

    Subclasses declare their parameters as annotated class attributes and fill one
    hook, :meth:`_build_task`; the data path, seeding, the training loop, feature
    extraction and persistence are shared.

    Parameters
    ----------
    %(common_parameters)s

    Attributes
    ----------
    %(common_attributes)s
    """

    #: Methods whose step is costly accept ``max_epochs="auto"`` and set this to
    #: ``(image_passes, most)``: as many epochs as make ``image_passes`` images' worth
    #: of steps, at most ``most``, so a fit costs about the same on any number of images.
    _auto_epochs = None

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: "ArrayLike", y: None = None) -> "BaseFeaturizer":
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
        setup = prepare_fit(self, X, reset=not continuing, image_shape=self.image_shape)
        model_seed, data_seed = setup.seeds
        resume = self._read_checkpoint("checkpoint", n_samples=len(setup.images))
        if continuing and resume is None:  # train the fitted weights further
            task, history = self._trainable_task().to(setup.device), self.history_
        else:
            if hasattr(self, "task_"):
                del self.task_  # a failed fit must not leave the old model looking fitted
            task, history = self._initial_task(setup, model_seed), []
        self._check_resume("checkpoint", resume, task)
        generator = torch.Generator(setup.device).manual_seed(data_seed + len(history))
        epochs = self._epochs(len(setup.images))
        new_history = train(
            task,
            setup.data,
            value_range=self.value_range_,
            generator=generator,
            resume=resume,
            on_epoch_end=self._checkpoint_writer("checkpoint", epochs, n_samples=len(setup.images)),
            device=setup.device,
            description=type(self).__name__,
            **self._loop_settings(max_epochs=epochs),
        )
        task.requires_grad_(False).eval()
        self.task_ = task
        self._fit_interrupted = new_history.interrupted  # read by FineTunedClassifier
        self.history_ = history + [{**h, "epoch": h["epoch"] + len(history)} for h in new_history]
        self.n_iter_ = len(self.history_)
        return self

    def _epochs(self, n_images):
        """The passes over ``n_images`` training images that ``max_epochs`` asks for."""
        if self.max_epochs != "auto":
            return self.max_epochs
        image_passes, most = self._auto_epochs
        return min(most, -(-image_passes // max(n_images, 1)))  # ceil

    def _trainable_task(self):
        """A copy of the fitted ``task_`` that trains again: each parameter requires
        grad as in a newly built task (a momentum target stays out of the optimizer)."""
        task = copy.deepcopy(self.task_)
        fresh = dict(copy.copy(self).untrained_task().named_parameters())  # self stays as it is
        for name, parameter in task.named_parameters():
            parameter.requires_grad_(fresh[name].requires_grad)
        return task
