"""The two baselines every self-supervised result is read against.

- :class:`RandomFeaturizer`: the same backbone, never trained. Self-supervised
  features are only worth their pretext training if they beat these.
- :class:`SupervisedClassifier`: the same backbone trained end to end on the labels,
  the usual upper reference when labels are plentiful.
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from torch import nn

from ._data import check_images, to_tensor
from ._network_classifier import NetworkClassifierMixin
from ._transfer_tasks import ClassifierNetwork
from .backbones import Backbone, build_stages
from .base import BaseFeaturizer, _resolve_device


class FrozenTask(nn.Module):
    """Holds a :class:`RandomFeaturizer`'s backbone: no head, no loss, no training."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


class RandomFeaturizer(BaseFeaturizer):
    """Features of a randomly initialised, frozen backbone.

    The control for every self-supervised featurizer: the same network, the same
    layer and pooling, and no training at all. ``fit`` only learns the input shape,
    the value range and the per-channel statistics of ``X``; with the same
    ``random_state`` the weights are those a featurizer starts its pretext training
    from (e.g. ``RotNetFeaturizer(max_epochs=0)``).

    Parameters
    ----------
    backbone : {"small_cnn", "resnet18", "mlp"}, nn.Module subclass or instance, \
default="small_cnn"
        The network, as for every featurizer. See :mod:`skssl.backbones`.
    backbone_kwargs : dict, default=None
        Keyword arguments for the backbone builder.
    layer : str or int, default="auto"
        The stage whose output gives the features; ``"auto"`` takes the last one.
    pool : {"auto", "flatten", "avg"}, default="auto"
        How a stage's feature map becomes a vector; ``"auto"`` flattens for
        ``"small_cnn"`` and ``"mlp"`` and averages otherwise.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to embed; ``"auto"`` picks CUDA when available.
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
    (100, 64)
    """

    _parameter_constraints = {
        name: BaseFeaturizer._parameter_constraints[name]
        for name in ("backbone", "backbone_kwargs", "layer", "pool", "device", "image_shape",
                     "random_state")
    }

    def __init__(
        self,
        *,
        backbone="small_cnn",
        backbone_kwargs=None,
        layer="auto",
        pool="auto",
        device="auto",
        image_shape=None,
        random_state=None,
    ):
        self._store_parameters(locals())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
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
        images = check_images(self, X, reset=True, image_shape=self.image_shape)
        device = _resolve_device(self.device)
        # The first draw seeds the weights, as in every featurizer's fit.
        model_seed, _ = check_random_state(self.random_state).randint(0, 2**31 - 1, size=2)
        task = self._initial_task(images, to_tensor(images, device), device, model_seed)
        self.task_ = task.requires_grad_(False).eval()
        self.history_, self.n_iter_ = [], 0
        self._n_features_out = self._embed(images[:1], self.layer_).shape[1]
        return self

    def _build_task(self, backbone, pool_how):
        return FrozenTask(backbone)


class SupervisedClassifier(NetworkClassifierMixin, ClassifierMixin, BaseEstimator):
    """The featurizers' backbone trained end to end on labels.

    A linear head on the pooled output of the last stage, trained with
    cross-entropy by the same loop, optimiser and schedule as the pretext tasks
    (AdamW, cosine decay), from the random initial weights. With few labels it
    shows what self-supervised pretraining has to beat; with many, what it can
    approach.

    Parameters
    ----------
    backbone : {"small_cnn", "resnet18", "mlp"}, nn.Module subclass or instance, \
default="small_cnn"
        The network, as for every featurizer. See :mod:`skssl.backbones`.
    backbone_kwargs : dict, default=None
        Keyword arguments for the backbone builder.
    pool : {"auto", "flatten", "avg"}, default="auto"
        How the last stage's feature map becomes the head's input; ``"auto"``
        flattens for ``"small_cnn"`` and ``"mlp"`` and averages otherwise.
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
        Print the loss of every epoch when > 0.

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

    _parameter_constraints = {
        **{name: constraint for name, constraint in BaseFeaturizer._parameter_constraints.items()
           if name in ("backbone", "backbone_kwargs", "pool", "max_epochs", "batch_size",
                       "learning_rate", "weight_decay", "device", "image_shape", "random_state",
                       "verbose")},
        "augment": ["boolean"],
    }

    def __init__(
        self,
        *,
        backbone="small_cnn",
        backbone_kwargs=None,
        pool="auto",
        max_epochs=30,
        batch_size=64,
        learning_rate=1e-3,
        weight_decay=1e-4,
        augment=False,
        device="auto",
        image_shape=None,
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.backbone_kwargs = backbone_kwargs
        self.pool = pool
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.augment = augment
        self.device = device
        self.image_shape = image_shape
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
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
        images = check_images(self, X, reset=True, image_shape=self.image_shape)
        labels = self._encode_labels(y, len(images))
        model_seed, data_seed = check_random_state(self.random_state).randint(0, 2**31 - 1, size=2)
        # the random-init network every featurizer starts from, with the last stage's output
        initial = RandomFeaturizer(
            backbone=self.backbone, backbone_kwargs=self.backbone_kwargs, pool=self.pool,
            device=self.device, image_shape=self.image_shape, random_state=int(model_seed),
        ).fit(X)
        self.value_range_, self.layer_, self.pool_ = initial.value_range_, initial.layer_, initial.pool_
        backbone = initial.task_.backbone.requires_grad_(True)
        device = backbone.mean.device
        with torch.random.fork_rng(devices=[]):  # seed the head, leave the global RNG be
            torch.manual_seed(int(model_seed))
            network = ClassifierNetwork(backbone, self.layer_, self.pool_, len(self.classes_),
                                        augment=self.augment)
        network.to(device, memory_format=torch.channels_last)
        generator = torch.Generator(device).manual_seed(int(data_seed))
        history = self._train_network(
            network, to_tensor(images, device), labels, np.flatnonzero(labels >= 0),
            device=device, generator=generator, stage="fit", max_epochs=self.max_epochs,
        )
        self.task_ = network.requires_grad_(False).eval()
        self.history_ = list(history)
        self.n_iter_ = len(self.history_)
        return self

    _unlabeled_marker = False

    def _empty_task(self):
        """The network's architecture, for weights loaded from a file."""
        channels = self.image_shape_[0]
        stages = build_stages(self.backbone, self.image_shape_, self.backbone_kwargs)
        backbone = Backbone(stages, self.image_shape_, [0.0] * channels, [1.0] * channels)
        return ClassifierNetwork(backbone, self.layer_, self.pool_, len(self.classes_), augment=self.augment)

