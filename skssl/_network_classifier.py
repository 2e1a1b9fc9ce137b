"""What every network classifier shares: predictions streamed in batches, label
encoding with ``y == -1`` as unlabeled, one training stage through the shared loop,
checkpoints and the safe format. Used by :class:`~skssl.FineTunedClassifier` and
:class:`~skssl.SupervisedClassifier`."""

from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._checkpoint import CheckpointMixin
from ._data import check_finite_outputs, check_images, to_tensor
from ._persistence import SavedModelMixin
from ._training import autocast, train, unit_batches
from ._transfer_tasks import ClassifierNetwork, accuracy_on
from .semi_supervised import label_array, labeled_mask

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class NetworkClassifierMixin(SavedModelMixin, CheckpointMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """Predictions of a trained :class:`ClassifierNetwork` (``task_``), streamed in
    batches; ``transform`` gives its features, as for
    :class:`~sklearn.discriminant_analysis.LinearDiscriminantAnalysis`."""

    def _input_image_shape(self):
        return self.image_shape

    @property
    def _n_features_out(self):
        return self.task_.head.in_features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = self.random_state is None
        return tags

    def _network_outputs(self, X, output, batch_size=512):
        """``output(network, batch)`` for every batch of ``X``, concatenated as float64
        on the CPU; a ValueError names the images whose outputs overflow to NaN or infinity."""
        check_is_fitted(self)
        images = check_images(self, X, reset=False, image_shape=self._input_image_shape())
        network = self.task_
        device = network.backbone.mean.device
        with torch.inference_mode(), autocast(device, self.precision):
            batches = unit_batches(images, device, self.value_range_, batch_size)
            outputs = torch.cat([output(network, batch).double().cpu() for batch in batches]).numpy()
        return check_finite_outputs(self, outputs, images)

    def decision_function(self, X: "ArrayLike") -> np.ndarray:
        """The network's scores (logits) for each class.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, the score of ``classes_[1]`` minus that of ``classes_[0]``.
        """
        logits = self._network_outputs(X, ClassifierNetwork.logits)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X: "ArrayLike") -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype float64
        """
        return self._network_outputs(X, lambda network, batch: network.logits(batch).double().softmax(dim=1))

    def predict_log_proba(self, X: "ArrayLike") -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return self._network_outputs(X, lambda network, batch: network.logits(batch).double().log_softmax(dim=1))

    def predict(self, X: "ArrayLike") -> np.ndarray:
        """Most probable class of each image.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        scores = self._network_outputs(X, ClassifierNetwork.logits)
        return self.classes_[scores.argmax(axis=1)]

    def transform(self, X: "ArrayLike") -> np.ndarray:
        """The trained network's features: the pooled output of ``layer_``.

        Parameters
        ----------
        X : array-like
            Images in the layout and shape seen in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), dtype float32
        """
        return self._network_outputs(X, ClassifierNetwork.features).astype(np.float32)

    #: Whether ``y == -1`` marks unlabeled rows (scikit-learn's semi-supervised
    #: convention) rather than a class.
    _unlabeled_marker = True

    def _encode_labels(self, y, n_rows):
        """Validate ``y`` and set ``classes_``; return class codes, ``-1`` where unlabeled."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = column_or_1d(label_array(y), warn=True)
        if len(y) != n_rows:
            raise ValueError(f"X has {n_rows} images but y has {len(y)} labels; pass one label (or -1) per image.")
        if (
            y.dtype.kind == "f"
            and np.isnan(y).any()
            or y.dtype.kind == "O"
            and any(value is None or (isinstance(value, float) and np.isnan(value)) for value in y)
        ):
            raise ValueError(
                "y holds NaN or None labels; mark unlabeled images with -1 and give every other image its class."
            )
        labeled = labeled_mask(y) if self._unlabeled_marker else np.ones(len(y), dtype=bool)
        if not labeled.any():
            raise ValueError(
                f"{type(self).__name__} got no labeled image: all {len(y)} values of y are "
                f"-1 (unlabeled). Label at least one image of every class."
            )
        check_classification_targets(y[labeled])
        self.classes_, codes = np.unique(y[labeled], return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes among the labeled images; "
                f"y holds 1 class ({self.classes_[0]!r})."
            )
        labels = np.full(len(y), -1, dtype=np.int64)
        labels[labeled] = codes
        return labels

    def _train_network(self, network, data, targets, rows, *, device, generator, stage, validation=None, **settings):
        """Train ``network`` on the images ``rows`` with ``targets`` (codes or soft targets)
        for one stage; ``validation`` is ``(rows, codes)`` of held-out labeled images;
        ``settings`` override the loop settings of the parameters (``max_epochs``, ...)."""
        score = None
        if validation is not None and len(validation[0]):
            validation_rows, codes = validation
            score = accuracy_on(
                _subset(data, validation_rows, device),
                torch.as_tensor(codes[validation_rows], device=device),
                self.value_range_,
            )
        settings = self._loop_settings(n_iter_no_change=self._patience(), **settings)
        settings["batch_size"] = min(settings["batch_size"], len(rows))
        resume = self._read_checkpoint(stage, n_samples=len(rows))
        self._check_resume(stage, resume, network)
        return train(
            network,
            _subset(data, rows, device),
            targets=torch.as_tensor(targets[rows]).to(device),
            value_range=self.value_range_,
            generator=generator,
            resume=resume,
            on_epoch_end=self._checkpoint_writer(stage, settings["max_epochs"], n_samples=len(rows)),
            device=device,
            validation=score,
            estimator_name="classifier",
            description=f"{type(self).__name__} {stage.replace('_', '-')}",
            **settings,
        )

    def _patience(self):
        """Epochs without improvement before a stage stops (None: never)."""
        return self.n_iter_no_change

    def _checkpoint_meta(self, n_samples):
        return {**super()._checkpoint_meta(n_samples), "classes": [str(c) for c in self.classes_]}


def _subset(data, rows, device):
    """The images ``rows`` of the training set: rows of a tensor on the device, or of a
    memmap, copied to the device unless they are all of it (then it streams as it is)."""
    if isinstance(data, torch.Tensor):
        return data[torch.as_tensor(rows, device=data.device)]
    if len(rows) == len(data) and np.array_equal(rows, np.arange(len(data))):
        return data
    return to_tensor(data[rows], device)
