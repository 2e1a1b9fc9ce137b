"""Transfer: fine-tune the pretext network on the few labels, then learn from the unlabeled rows.

The second half of the field's pipeline. A featurizer pretext-trains a backbone on
every image; :class:`FineTunedClassifier` then trains that backbone, cut at the
featurizer's ``layer``, with a new linear head on the labeled rows (``y != -1``), and
uses the unlabeled rows once more:

- ``"self_training"`` (FixMatch [0]): in every batch, the network's confident
  predictions on lightly augmented unlabeled images become the labels of heavily
  augmented views of them;
- ``"distill"`` (SimCLRv2 [1]): the fine-tuned network (the teacher) labels every
  image with its soft predictions once; the network goes on learning them (the labeled
  rows keep their true labels);
- ``"s4l"`` (S4L [2]): no separate pretext stage; the pretext loss on every row and
  the cross-entropy on the labeled rows are minimised together.

One training loop (:func:`skssl._training.train`) runs every stage: a supervised stage
is one more task for it (:mod:`skssl._transfer_tasks`).

- [0] Sohn et al., "FixMatch: Simplifying Semi-Supervised Learning with Consistency
  and Confidence", NeurIPS 2020, arXiv:2001.07685.
- [1] Chen, Kornblith, Swersky, Norouzi & Hinton, "Big Self-Supervised Models are
  Strong Semi-Supervised Learners" (SimCLRv2), NeurIPS 2020, arXiv:2006.10029.
- [2] Zhai, Oliver, Kolesnikov & Beyer, "S4L: Self-Supervised Semi-Supervised
  Learning", ICCV 2019, arXiv:1905.03670.
"""

import copy
import sys
from dataclasses import field
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted, check_memory

from . import _distributed
from ._network_classifier import NetworkClassifierMixin
from ._parameters import RuntimeParameters, TrainingParameters
from ._setup import prepare_fit, seeded
from ._transfer_tasks import ClassifierNetwork, JointTask, SelfTrainingTask, predict_proba
from .base import BaseFeaturizer

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

SEMI_SUPERVISED = ("distill", "self_training", "s4l")


def _fit_featurizer(featurizer, X):
    """The pretext stage, a module-level function so that ``memory`` can cache it."""
    return featurizer.fit(X)


class FineTunedClassifier(
    MetaEstimatorMixin, NetworkClassifierMixin, ClassifierMixin, BaseEstimator, RuntimeParameters, TrainingParameters
):
    """Fine-tune a self-supervised featurizer's network on the labels; use the unlabeled rows too.

    ``fit(X, y)`` takes every image, labeled or not (``y == -1``, scikit-learn's
    semi-supervised convention):

    1. **pretext**: a clone of ``featurizer`` is fitted on all of ``X`` (a featurizer
       wrapped in :class:`sklearn.frozen.FrozenEstimator` is used as it is, never
       refitted: fine-tuning works on a copy of its network);
    2. **fine-tuning**: its backbone, cut at the featurizer's ``layer_``, with a new
       linear head, is trained on the labeled images, shifted and zoomed a little at
       random (``augment``);
    3. **semi-supervised** (``semi_supervised``): the fine-tuned network goes on
       training on every image, its confident predictions on lightly augmented
       unlabeled images becoming the labels of strongly augmented views of them
       (``"self_training"``, FixMatch [0]_); or it teaches a student its soft
       predictions (``"distill"``, SimCLRv2 [1]_); or ``"s4l"`` [2]_ replaces steps 1
       and 2 by one joint objective. What each option did on MNIST and digits is in
       ``benchmarks/RESULTS.md``: self-training measured best.

    The featurizer's own parameters govern the pretext stage (its epochs, device,
    verbosity); this estimator's govern the rest.

    Parameters
    ----------
    featurizer : skssl featurizer or FrozenEstimator of a fitted one
        The pretext method, e.g. ``SimCLRFeaturizer()``. It is cloned, never fitted in
        place.
    semi_supervised : {"self_training", "distill", "s4l"} or None, default="self_training"
        How the unlabeled images are used after fine-tuning; None: not at all.
        Without unlabeled images only the fine-tuning runs.
    max_epochs : int, default=100
        Fine-tuning passes over the labeled images.
    batch_size : int, default=64
        Images per step (at most the training set).
    learning_rate : float, default=1e-3
        Peak AdamW learning rate of the head, decayed to zero by a cosine schedule.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    backbone_lr_scale : float, default=1.0
        The backbone's learning rate relative to the head's; 0 trains the head alone.
    frozen_stages : int or str, default=0
        Leading backbone stages that stay as pretext training left them (weights and
        batch-norm statistics): a count, or the name of the last frozen stage.
    augment : bool, default=True
        Shift (up to a tenth of the side) and zoom (0.9-1.1) every training image at
        random; never flip or turn it, which can change its class (a 6 and a 9).
    semi_supervised_epochs : int, default=90
        Passes over all images in the semi-supervised stage.
    temperature : float, default=1.0
        Softmax temperature of the teacher's predictions in ``"distill"``.
    confidence_threshold : float, default=0.95
        The probability above which ``"self_training"`` trusts a teacher's label.
    s4l_weight : float, default=1.0
        Weight of the cross-entropy against the pretext loss in ``"s4l"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the labeled images (stratified), score
        every epoch on them, stop after ``n_iter_no_change`` epochs without an
        improvement of ``tol`` and keep the best epoch's weights, as
        :class:`~sklearn.neural_network.MLPClassifier` does. Without it every stage
        runs all its epochs (the cosine schedule needs to reach its end).
    validation_fraction : float, default=0.1
        Share of the labeled images held out for ``early_stopping``.
    n_iter_no_change : int, default=10
        Epochs without improvement before ``early_stopping`` stops a stage.
    tol : float, default=1e-4
        Improvement of the validation accuracy that counts.
    memory : str, joblib.Memory or None, default=None
        Caches the pretext stage, like :class:`~sklearn.pipeline.Pipeline`'s
        ``memory``: a grid search over the other parameters then pretext-trains once
        per training set instead of once per candidate.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where to fine-tune and predict; ``"auto"`` picks CUDA when available.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of training and prediction, as for the featurizers.
    compile : bool, default=False
        Compile the network with ``torch.compile`` for training.
    random_state : int, RandomState instance or None, default=None
        Seeds the head, the validation split, shuffling and augmentation.
    verbose : int, default=0
        When > 0, name each stage and show its progress: a bar on a terminal or in
        a notebook, one line per epoch elsewhere.
    n_threads : "auto" or int, default="auto"
        CPU threads for training: ``"auto"`` lowers torch's while other processes
        keep cores busy; an int trains on exactly that many, for bit-identical runs.
    warm_start : bool, default=False
        Resume the stages saved in ``checkpoint_dir`` (the featurizer's pretext run
        too, when it has no ``checkpoint_dir`` of its own), giving the weights of an
        uninterrupted run.
    checkpoint_dir : str or path, default=None
        Where to keep each stage's state (``fine_tune.pt``, ``semi_supervised.pt``;
        the pretext run in ``pretext/`` unless the featurizer has a
        ``checkpoint_dir``), rewritten atomically.
    checkpoint_every : int, default=1
        Epochs between checkpoints (a stage's last epoch is always saved).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen among the labeled images (never -1).
    featurizer_ : skssl featurizer
        The pretext-trained featurizer (the frozen one itself, unchanged, when
        ``featurizer`` was a ``FrozenEstimator``).
    task_ : ClassifierNetwork
        The trained network: ``task_.backbone`` and the linear ``task_.head``.
    layer_ : str
        The backbone stage under the head (the featurizer's ``layer_``).
    n_labeled_ : int
        Labeled images in ``fit``.
    n_features_in_ : int
        Values per image seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` was a DataFrame.
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images.
    value_range_ : tuple of float
        Raw values mapped to 0 and 1.
    history_ : list of dict
        ``{"stage", "epoch", "loss", "seconds"}`` (and ``"validation_score"``) for
        every epoch of the fine-tuning and semi-supervised stages.
    n_iter_ : int
        Epochs run in those stages.

    See Also
    --------
    skssl.SupervisedClassifier : the same network trained on the labels alone.
    skssl.semi_supervised.LabeledOnly : a probe on frozen features instead.

    References
    ----------
    .. [0] Sohn et al., "FixMatch: Simplifying Semi-Supervised Learning with
       Consistency and Confidence", NeurIPS 2020.
    .. [1] Chen, Kornblith, Swersky, Norouzi & Hinton, "Big Self-Supervised Models
       are Strong Semi-Supervised Learners", NeurIPS 2020.
    .. [2] Zhai, Oliver, Kolesnikov & Beyer, "S4L: Self-Supervised Semi-Supervised
       Learning", ICCV 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skssl import FineTunedClassifier, SimCLRFeaturizer
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:300], y[:300].copy()
    >>> y[100:] = -1  # 100 labeled images, 200 unlabeled
    >>> classifier = FineTunedClassifier(
    ...     SimCLRFeaturizer(max_epochs=1, random_state=0),
    ...     max_epochs=2, semi_supervised_epochs=1, random_state=0,
    ... ).fit(X, y)
    >>> classifier.predict(X[:3]).shape, classifier.predict_proba(X[:3]).shape
    ((3,), (3, 10))
    >>> [record["stage"] for record in classifier.history_]
    ['fine_tune', 'fine_tune', 'semi_supervised']
    """

    featurizer: BaseEstimator = field(kw_only=False)
    semi_supervised: str | None = "self_training"
    max_epochs: int = 100
    backbone_lr_scale: float = 1.0
    frozen_stages: int | str = 0
    augment: bool = True
    semi_supervised_epochs: int = 90
    temperature: float = 1.0
    confidence_threshold: float = 0.95
    s4l_weight: float = 1.0
    early_stopping: bool = False
    validation_fraction: float = 0.1
    n_iter_no_change: int | None = 10
    memory: str | object | None = None

    _parameter_constraints = {
        "featurizer": "no_validation",  # fit checks that it is an skssl featurizer
        "semi_supervised": [StrOptions(set(SEMI_SUPERVISED)), None],
        "backbone_lr_scale": [Interval(Real, 0, None, closed="left")],
        "frozen_stages": [Interval(Integral, 0, None, closed="left"), str],
        "augment": ["boolean"],
        "semi_supervised_epochs": [Interval(Integral, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "confidence_threshold": [Interval(Real, 0, 1, closed="both")],
        "s4l_weight": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "memory": [None, str, HasMethods(["cache"])],
    }
    _saved_attributes = (*NetworkClassifierMixin._saved_attributes, "n_labeled_")

    def _inner_featurizer(self):
        """The skssl featurizer behind ``featurizer`` (unwrapping a FrozenEstimator)."""
        inner = self.featurizer.estimator if isinstance(self.featurizer, FrozenEstimator) else self.featurizer
        if not isinstance(inner, BaseFeaturizer):
            raise TypeError(
                f"featurizer must be an skssl featurizer such as SimCLRFeaturizer() (or a "
                f"FrozenEstimator of a fitted one), got {type(inner).__name__}. For another "
                f"transformer, use a Pipeline with skssl.semi_supervised.LabeledOnly."
            )
        return inner

    def _input_image_shape(self):
        return self._inner_featurizer().image_shape

    @_fit_context(prefer_skip_nested_validation=False)  # the featurizer validates its own
    def fit(self, X: "ArrayLike", y: "ArrayLike") -> "FineTunedClassifier":
        """Pretext-train on every image, fine-tune on the labeled ones, then use the rest.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_pixels) or an image array
            Every image, labeled or not: flat rows, ``(n, H, W)``, ``(n, H, W, C)``
            or ``(n, C, H, W)``.
        y : array-like of shape (n_samples,)
            Class labels, ``-1`` for unlabeled images.

        Returns
        -------
        self : object
            The fitted classifier.
        """
        inner = self._inner_featurizer()
        setup = prepare_fit(self, X, reset=True, image_shape=inner.image_shape, n_seeds=3)
        labels = self._encode_labels(y, len(setup.images))
        self._check_checkpoint_dir()  # now, not after pretext training
        device = setup.device
        head_seed, data_seed, split_seed = setup.seeds
        train_rows, validation_rows = self._split(labels, split_seed)
        unlabeled = np.setdiff1d(np.flatnonzero(labels == -1), validation_rows)
        if hasattr(self, "task_"):
            del self.task_  # a failed fit must not leave the old model looking fitted

        featurizer = self._pretext(X, inner)
        if tuple(featurizer.image_shape_) != tuple(self.image_shape_):
            raise ValueError(
                f"The featurizer was fitted on images of shape {featurizer.image_shape_}, "
                f"but X holds {self.image_shape_}; fit it on images like X."
            )
        self.featurizer_, self.layer_ = featurizer, featurizer.layer_
        self.value_range_ = featurizer.value_range_
        data = setup.data
        generator = torch.Generator(device).manual_seed(data_seed)
        stage = dict(data=data, device=device, generator=generator, validation=(validation_rows, labels))
        if self.semi_supervised == "s4l":
            joint = self._joint_task(featurizer, device, head_seed)
            rows = np.union1d(train_rows, unlabeled)
            self._log(f"S4L: pretext loss on {len(rows)} images, cross-entropy on {len(train_rows)}")
            history = self._stage(
                joint,
                labels,
                rows,
                "s4l",
                inner._epochs(len(rows)),
                **stage,
                batch_size=inner.batch_size,
                learning_rate=inner.learning_rate,
            )
            network = joint.classifier
        else:
            network = self._new_network(featurizer, device, head_seed)
            self._log(f"fine-tuning on {len(train_rows)} labeled images")
            history = self._stage(network, labels, train_rows, "fine_tune", self.max_epochs, **stage)
            if self.semi_supervised and len(unlabeled) and not history.interrupted:
                rows = np.union1d(train_rows, unlabeled)
                self._log(f"{self.semi_supervised}: {len(rows)} images")
                if self.semi_supervised == "distill":
                    task, targets = network, self._teacher_targets(network, data, labels, device)
                else:
                    task, targets = SelfTrainingTask(network, self.confidence_threshold), labels
                history += self._stage(task, targets, rows, "semi_supervised", self.semi_supervised_epochs, **stage)
        self.task_ = network.requires_grad_(False).eval()
        self.history_ = list(history)
        self.n_iter_ = len(self.history_)
        self.n_labeled_ = int((labels >= 0).sum())
        return self

    def _log(self, message):
        if self.verbose and _distributed.is_main_process():
            print(message, file=sys.stderr, flush=True)

    def _split(self, labels, seed):
        """Labeled rows to train on and to validate on (``early_stopping``)."""
        labeled = np.flatnonzero(labels >= 0)
        if not self.early_stopping:
            return labeled, np.array([], dtype=np.int64)
        try:
            train_rows, validation_rows = train_test_split(
                labeled, test_size=self.validation_fraction, stratify=labels[labeled], random_state=seed
            )
        except ValueError:  # a class too rare to stratify
            train_rows, validation_rows = train_test_split(
                labeled, test_size=self.validation_fraction, random_state=seed
            )
        return np.sort(train_rows), np.sort(validation_rows)

    def _pretext(self, X, inner):
        """The fitted featurizer: the frozen one, or a clone fitted on ``X`` (cached by ``memory``)."""
        if isinstance(self.featurizer, FrozenEstimator):
            check_is_fitted(inner)
            return inner
        featurizer = clone(inner)
        if self.semi_supervised == "s4l":
            featurizer.set_params(max_epochs=0)  # S4L trains the pretext task jointly
        if self.verbose and not featurizer.verbose:
            featurizer.set_params(verbose=self.verbose)  # progress of every stage
        if self.checkpoint_dir is not None and featurizer.checkpoint_dir is None:
            featurizer.set_params(checkpoint_dir=str(Path(self.checkpoint_dir) / "pretext"), warm_start=self.warm_start)
        self._log(f"pretext training: {type(featurizer).__name__} on {_num_samples(X)} images")
        fitted = check_memory(self.memory).cache(_fit_featurizer)(featurizer, X)
        if getattr(fitted, "_fit_interrupted", False):
            raise KeyboardInterrupt  # no classifier to keep yet: stop as Ctrl-C does
        return fitted

    def _new_network(self, featurizer, device, seed, backbone=None):
        """A copy of the featurizer's backbone (or ``backbone`` itself, shared) and a
        new head, seeded."""
        shared = backbone is not None
        if not shared:
            backbone = copy.deepcopy(featurizer.task_.backbone).requires_grad_(True)
        names = backbone.stage_names
        frozen = 0 if shared else self.frozen_stages
        if isinstance(frozen, str):
            if frozen not in names:
                raise ValueError(f"frozen_stages={frozen!r} is not a stage of this backbone; use one of {names}.")
            frozen = names.index(frozen) + 1
        if frozen > names.index(self.layer_) + 1:
            raise ValueError(
                f"frozen_stages={self.frozen_stages!r} reaches past the featurizer's layer "
                f"{self.layer_!r}; at most {names.index(self.layer_) + 1} stages can be frozen."
            )
        network = seeded(
            seed,
            lambda: ClassifierNetwork(
                backbone,
                self.layer_,
                featurizer.pool_,
                len(self.classes_),
                frozen_stages=frozen,
                backbone_lr_scale=self.backbone_lr_scale,
                augment=self.augment,
                shared=shared,
            ),
        )
        return network.to(device, memory_format=torch.channels_last)

    def untrained_task(self):
        """The network's architecture, for weights loaded from a file."""
        return self._new_network(self.featurizer_, torch.device("cpu"), seed=0)

    def _patience(self):
        return self.n_iter_no_change if self.early_stopping else None

    def _joint_task(self, featurizer, device, seed):
        """S4L: the featurizer's pretext task, trainable, and a head on its backbone."""
        pretext = featurizer._trainable_task().to(device)
        classifier = self._new_network(featurizer, device, seed, backbone=pretext.backbone)
        return JointTask(pretext, classifier, weight=self.s4l_weight)

    def _stage(self, network, targets, rows, stage, max_epochs, *, data, device, generator, validation, **settings):
        history = self._train_network(
            network,
            data,
            targets,
            rows,
            device=device,
            generator=generator,
            stage=stage,
            max_epochs=max_epochs,
            validation=validation,
            **settings,
        )
        for record in history:
            record["stage"] = stage
        return history

    def _teacher_targets(self, teacher, data, labels, device):
        """Soft targets to distil: the teacher's predictions, the true label where known."""
        proba = predict_proba(teacher, data, self.value_range_, device, self.temperature)  # (n, K)
        teacher.train()
        labeled = labels >= 0
        proba[labeled] = np.eye(len(self.classes_), dtype=np.float32)[labels[labeled]]
        return proba
