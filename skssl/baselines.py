"""The two baselines every self-supervised result is read against.

- :class:`RandomFeaturizer`: the same backbone, never trained. Self-supervised
  features are only worth their pretext training if they beat these.
- :class:`SupervisedClassifier`: the same backbone trained end to end on the labels,
  the usual upper reference when labels are plentiful.
"""

from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from torch import nn

from ._data import value_range
from ._network_classifier import NetworkClassifierMixin
from ._parameters import NetworkParameters, RuntimeParameters, TrainingParameters
from ._setup import prepare_fit, seeded
from ._training import channel_stats
from ._transfer_tasks import ClassifierNetwork
from .backbones import Backbone, build_stages
from .base import BackboneFeatures

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class FrozenTask(nn.Module):
    """Holds a :class:`RandomFeaturizer`'s backbone: no head, no loss, no training."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


class RandomFeaturizer(BackboneFeatures):
    """Features of a randomly initialised, frozen backbone.

    The control for every self-supervised featurizer: the same network, the same
    layer and pooling, and no training at all. ``fit`` only learns the input shape,
    the value range and the per-channel statistics of ``X``; with the same
    ``random_state`` the weights are those a featurizer starts its pretext training
    from (e.g. ``RotNetFeaturizer(max_epochs=0)``).

    Parameters
    ----------
    backbone : {"small_cnn", "wide_cnn", "resnet18", "mlp"}, nn.Module subclass or \
instance, default="wide_cnn"
        The network, as for every featurizer. See :mod:`skssl.backbones`.
    backbone_kwargs : dict, default=None
        Keyword arguments for the backbone builder.
    layer : str or int, default="auto"
        The stage whose output gives the features; ``"auto"`` takes the last one.
    pool : {"auto", "flatten", "avg"}, default="auto"
        How a stage's feature map becomes a vector; ``"auto"`` flattens for
        the small CNNs and ``"mlp"`` and averages otherwise.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to embed; ``"auto"`` picks CUDA when available.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of the embedding: ``"auto"`` is bfloat16 on CUDA, float32 on the CPU.
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of flat rows, or the
        layout of 4-D input; ``None`` infers square grayscale images.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights. The same integer gives the same weights.

    Attributes
    ----------
    n_features_in_ : int
        Values per image seen in ``fit``.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the images.
    value_range_ : tuple of float
        Raw values mapped to 0 and 1.
    layer_ : str
        The stage that gives the features.
    pool_ : str
        The pooling in use.
    task_ : nn.Module
        Holds the frozen ``task_.backbone``.
    history_ : list
        Always empty: no epoch runs.
    n_iter_ : int
        Always 0.

    See Also
    --------
    SupervisedClassifier : the same backbone trained on labels.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.baselines import RandomFeaturizer
    >>> X = load_digits().data[:100]
    >>> RandomFeaturizer(random_state=0).fit_transform(X).shape
    (100, 512)
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: "ArrayLike", y: None = None) -> "RandomFeaturizer":
        """Build the backbone for the images ``X``; nothing is trained.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_pixels) or an image array
            Flat rows, ``(n, H, W)``, ``(n, H, W, C)`` or ``(n, C, H, W)``; they
            give the input shape, value range and per-channel statistics.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted featurizer.
        """
        setup = prepare_fit(self, X, reset=True, image_shape=self.image_shape)
        model_seed, _ = setup.seeds  # the first seeds the weights, as in every featurizer's fit
        self.task_ = self._initial_task(setup, model_seed).requires_grad_(False).eval()
        self.history_, self.n_iter_ = [], 0
        return self

    def _build_task(self, backbone, context):
        return FrozenTask(backbone)


class SupervisedClassifier(
    NetworkClassifierMixin, ClassifierMixin, BaseEstimator, NetworkParameters, RuntimeParameters, TrainingParameters
):
    """The featurizers' backbone trained end to end on labels.

    A linear head on the pooled output of the last stage, trained with
    cross-entropy by the same loop, optimiser and schedule as the pretext tasks
    (AdamW, cosine decay), from the random initial weights. With few labels it
    shows what self-supervised pretraining has to beat; with many, what it can
    approach.

    Parameters
    ----------
    backbone : {"small_cnn", "wide_cnn", "resnet18", "mlp"}, nn.Module subclass or \
instance, default="wide_cnn"
        The network, as for every featurizer. See :mod:`skssl.backbones`.
    backbone_kwargs : dict, default=None
        Keyword arguments for the backbone builder.
    pool : {"auto", "flatten", "avg"}, default="auto"
        How the last stage's feature map becomes the head's input; ``"auto"``
        flattens for the small CNNs and ``"mlp"`` and averages otherwise.
    max_epochs : int, default=30
        Passes over the training images.
    batch_size : int, default=64
        Images per step (at most the training set).
    learning_rate : float, default=1e-3
        Peak AdamW learning rate, decayed to zero by a cosine schedule.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    augment : bool, default=False
        Shift and zoom every training image a little at random, as
        :class:`~skssl.FineTunedClassifier` does (never flip or turn it): the fair
        baseline for a fine-tuned network.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train and predict; ``"auto"`` picks CUDA when available.
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of flat rows, or the
        layout of 4-D input; ``None`` infers square grayscale images.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, shuffling and augmentation; the global torch RNG is untouched.
    verbose : int, default=0
        When > 0, show training progress: a bar on a terminal or in a notebook,
        one line per epoch elsewhere.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and prediction; ``"auto"`` is bfloat16 on CUDA and
        float32 on the CPU.
    compile : bool, default=False
        Compile the network with ``torch.compile`` for training.
    n_threads : "auto" or int, default="auto"
        CPU threads for training: ``"auto"`` lowers torch's while other processes
        keep cores busy; an int trains on exactly that many, for bit-identical runs.
    warm_start : bool, default=False
        Resume the run saved in ``checkpoint_dir`` if there is one.
    tol : float, default=1e-4
        Loss improvement that counts for early stopping.
    n_iter_no_change : int, default=None
        Stop when the epoch loss has not improved by ``tol`` for this many epochs;
        None trains all ``max_epochs``.
    checkpoint_dir : str or path, default=None
        Where to keep ``fit.pt``, the state of the run, rewritten atomically.
    checkpoint_every : int, default=1
        Epochs between checkpoints (the last epoch is always saved).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Values per image seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images.
    value_range_ : tuple of float
        Raw values mapped to 0 and 1.
    layer_ : str
        The last backbone stage, under the head.
    pool_ : str
        The pooling in use.
    task_ : ClassifierNetwork
        The trained network: ``task_.backbone`` and the linear ``task_.head``.
    history_ : list of dict
        ``{"epoch", "loss", "seconds"}`` for every epoch run.
    n_iter_ : int
        Epochs run.

    See Also
    --------
    RandomFeaturizer : the same backbone, untrained.
    skssl.FineTunedClassifier : the same training, from pretext-trained weights.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl.baselines import SupervisedClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SupervisedClassifier(max_epochs=2, random_state=0).fit(X[:200], y[:200])
    >>> clf.predict(X[200:203]).shape, clf.predict_proba(X[200:203]).shape
    ((3,), (3, 10))
    """

    augment: bool = False

    _parameter_constraints = {"augment": ["boolean"]}
    _saved_attributes = (*NetworkClassifierMixin._saved_attributes, "pool_")
    _unlabeled_marker = False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: "ArrayLike", y: "ArrayLike") -> "SupervisedClassifier":
        """Train the backbone and head on labelled images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_pixels) or an image array
            Flat rows, ``(n, H, W)``, ``(n, H, W, C)`` or ``(n, C, H, W)``.
        y : array-like of shape (n_samples,)
            Class labels (``-1`` is a class like any other here).

        Returns
        -------
        self : object
            The fitted classifier.
        """
        setup = prepare_fit(self, X, reset=True, image_shape=self.image_shape)
        labels = self._encode_labels(y, len(setup.images))
        model_seed, data_seed = setup.seeds
        self.value_range_ = value_range(setup.images)
        mean, std = channel_stats(setup.data, self.value_range_, setup.device)
        # the weights of RandomFeaturizer(random_state=model_seed): the same network, untrained
        backbone_seed = check_random_state(model_seed).randint(0, 2**31 - 1, size=2)[0]
        backbone = seeded(backbone_seed, lambda: self._new_backbone(mean, std))
        self.layer_, self.pool_ = backbone.stage_names[-1], self._resolve_pool()
        network = seeded(model_seed, lambda: self._new_network(backbone))
        network.to(setup.device, memory_format=torch.channels_last)
        generator = torch.Generator(setup.device).manual_seed(data_seed)
        history = self._train_network(
            network,
            setup.data,
            labels,
            np.flatnonzero(labels >= 0),
            device=setup.device,
            generator=generator,
            stage="fit",
        )
        self.task_ = network.requires_grad_(False).eval()
        self.history_ = list(history)
        self.n_iter_ = len(self.history_)
        return self

    def _new_backbone(self, mean, std):
        stages = build_stages(self.backbone, self.image_shape_, self.backbone_kwargs)
        return Backbone(stages, self.image_shape_, mean, std)

    def _new_network(self, backbone):
        return ClassifierNetwork(backbone, self.layer_, self.pool_, len(self.classes_), augment=self.augment)

    def untrained_task(self):
        """The network's architecture with fresh weights, for weights loaded from a file."""
        channels = self.image_shape_[0]
        return seeded(0, lambda: self._new_network(self._new_backbone([0.0] * channels, [1.0] * channels)))
