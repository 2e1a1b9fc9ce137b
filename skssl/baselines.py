"""The two baselines every self-supervised result is read against.

- :class:`RandomFeaturizer`: the same backbone, never trained. Self-supervised
  features are only worth their pretext training if they beat these.
- :class:`SupervisedClassifier`: the same backbone trained end to end on the labels,
  the usual upper reference when labels are plentiful.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d
from torch import nn

from ._data import check_images, to_tensor, value_range
from ._training import to_unit, train
from .backbones import Backbone, build_stages, pool
from .base import BaseFeaturizer, PretextTask, TorchModelMixin, _channel_stats, _resolve_device


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


class ClassificationTask(PretextTask):
    """Backbone, pooling and a linear head, trained with cross-entropy on labels.

    The loop hands each batch's labels over as ``targets``; the images are shown
    as they are (no augmentation).
    """

    def __init__(self, backbone, pool_how, n_classes):
        super().__init__()
        self.backbone = backbone
        self.pool_how = pool_how
        self.head = nn.Linear(backbone.pooled_size(pool_how), n_classes)

    def logits(self, batch):
        return self.head(pool(self.backbone(batch), self.pool_how))  # (B, n_classes)

    def views(self, batch, generator):
        return batch, None  # the targets are the labels, which come from the loop

    def loss(self, inputs, targets):
        return F.cross_entropy(self.logits(inputs), targets)

    def forward(self, batch, generator, targets):
        inputs, _ = self.views(batch, generator)
        return self.loss(inputs, targets)


class SupervisedClassifier(TorchModelMixin, ClassifierMixin, BaseEstimator):
    """The featurizers' backbone trained end to end on labels.

    A linear head on the pooled output of the last stage, trained with
    cross-entropy by the same loop, optimiser and schedule as the pretext tasks
    (AdamW, cosine decay, no augmentation). With few labels it shows what
    self-supervised pretraining has to beat; with many, what it can approach.

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
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to train and predict; ``"auto"`` picks CUDA when available.
    image_shape : tuple of int, default=None
        ``(height, width)`` or ``(height, width, channels)`` of flat rows, or the
        layout of 4-D input; ``None`` infers square grayscale images.
    random_state : int, RandomState instance or None, default=None
        Seeds weights and shuffling; the global torch RNG is untouched.
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
    pool_ : str
        The pooling in use.
    task_ : nn.Module
        The trained network: ``task_.backbone`` and the linear ``task_.head``.
    history_ : list of dict
        ``{"epoch", "loss", "seconds"}`` for every epoch run.
    n_iter_ : int
        Epochs run.

    See Also
    --------
    RandomFeaturizer : the same backbone, untrained.

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
        name: constraint
        for name, constraint in BaseFeaturizer._parameter_constraints.items()
        if name != "layer"
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
            Class labels.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        images = check_images(self, X, reset=True, image_shape=self.image_shape)
        y = column_or_1d(y, warn=True)
        check_consistent_length(images, y)
        check_classification_targets(y)
        self.classes_, y_encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes to learn from; y holds "
                f"1 class ({self.classes_[0]!r})."
            )
        device = _resolve_device(self.device)
        model_seed, data_seed = check_random_state(self.random_state).randint(0, 2**31 - 1, size=2)
        self.value_range_ = value_range(images)
        data = to_tensor(images, device)  # the whole set, moved once
        mean, std = _channel_stats(data, self.value_range_, device)

        with torch.random.fork_rng(devices=[]):  # seed the weights, leave the global RNG be
            torch.manual_seed(int(model_seed))
            stages = build_stages(self.backbone, self.image_shape_, self.backbone_kwargs)
            backbone = Backbone(stages, self.image_shape_, mean, std)
            self.pool_ = self._resolve_pool()
            task = ClassificationTask(backbone, self.pool_, len(self.classes_))
        task.to(device, memory_format=torch.channels_last)
        generator = torch.Generator(device).manual_seed(int(data_seed))
        self.history_ = train(
            task,
            data,
            targets=torch.as_tensor(y_encoded, dtype=torch.long, device=device),
            value_range=self.value_range_,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            generator=generator,
            verbose=self.verbose,
        )
        task.requires_grad_(False).eval()
        self.task_ = task
        self.n_iter_ = len(self.history_)
        return self

    def predict_proba(self, X, batch_size=512):
        """Class probabilities, streamed in batches.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.
        batch_size : int, default=512
            Images per forward pass.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype float64
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        images = check_images(self, X, reset=False, image_shape=self.image_shape)
        device = self.task_.backbone.mean.device
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = to_unit(to_tensor(images[start:start + batch_size], device), self.value_range_)
                chunks.append(self.task_.logits(batch).double().softmax(dim=1).cpu())
        return torch.cat(chunks).numpy()

    def predict(self, X):
        """Most probable class of each image.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags
