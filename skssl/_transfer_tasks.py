"""The networks and tasks of transfer: a classifier on a pretext-trained backbone, and
the semi-supervised objectives that train it on unlabeled images too.

Each is a task for the one training loop (:func:`skssl._training.train`): the loop
hands every batch's per-image targets over (class codes, ``-1`` where unlabeled, or
class probabilities to distil).

- [0] Sohn et al., "FixMatch: Simplifying Semi-Supervised Learning with Consistency
  and Confidence", NeurIPS 2020, arXiv:2001.07685.
- [1] Zhai, Oliver, Kolesnikov & Beyer, "S4L: Self-Supervised Semi-Supervised
  Learning", ICCV 2019, arXiv:1905.03670.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ._training import chunks, to_unit
from .augment import cutout, random_affine, random_shift_scale, resize
from .backbones import pool
from .task import PretextTask


class ClassifierNetwork(PretextTask):
    """A backbone cut at ``layer``, pooled, and a linear head, trained with cross-entropy.

    The loop hands each batch's targets over: class indices ``(B,)`` (``-1`` rows are
    ignored) or class probabilities ``(B, n_classes)`` to distil. With ``augment``
    every training batch is shifted and zoomed a little
    (:func:`~skssl.augment.random_shift_scale`); never flipped or turned, which would
    change what a digit or a letter is.

    Parameters
    ----------
    backbone : Backbone
        The (pretext-trained) backbone; trained in place.
    layer : str
        The stage whose pooled output feeds the head; later stages are not used.
    pool_how : {"flatten", "avg"}
        How that stage's map becomes a vector.
    n_classes : int
        Outputs of the head.
    frozen_stages : int, default=0
        Leading stages whose weights and batch-norm statistics stay as they are.
    backbone_lr_scale : float, default=1.0
        The backbone's learning rate relative to the head's.
    augment : bool, default=True
        Shift and zoom the training images.
    shared : bool, default=False
        The backbone is also trained by another task (S4L's pretext task), which
        uses the stages after ``layer``.
    """

    def __init__(
        self,
        backbone,
        layer,
        pool_how,
        n_classes,
        *,
        frozen_stages=0,
        backbone_lr_scale=1.0,
        augment=True,
        shared=False,
    ):
        super().__init__()
        self.backbone = backbone
        self.layer = layer
        self.pool_how = pool_how
        self.backbone_lr_scale = backbone_lr_scale
        self.augment = augment
        names = backbone.stage_names
        # frozen leading stages, and the stages after ``layer``, which never see a
        # gradient here (unless the backbone is shared with a task that trains them)
        self.fixed_stages = names[:frozen_stages] + ([] if shared else names[names.index(layer) + 1 :])
        for module in self._fixed_modules():
            module.requires_grad_(False)
        self.head = nn.Linear(backbone.pooled_size(pool_how, layer), n_classes)

    def _fixed_modules(self):
        return [module for name in self.fixed_stages for module in self.backbone.stage_modules(name)]

    def train(self, mode=True):
        super().train(mode)
        for module in self._fixed_modules():
            module.eval()  # frozen batch norm keeps its statistics
        return self

    def parameter_groups(self):
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        return [{"params": backbone, "lr_scale": self.backbone_lr_scale}, {"params": list(self.head.parameters())}]

    def features(self, batch):
        """Pooled features ``(B, F)`` of [0, 1] images at their own size."""
        batch = resize(batch, self.backbone.in_shape[1:])  # small images work enlarged
        return pool(self.backbone(batch, upto=self.layer), self.pool_how)

    def logits(self, batch):
        return self.head(self.features(batch))  # (B, n_classes)

    def views(self, batch, generator, targets=None):
        if self.augment:
            batch = random_shift_scale(batch, generator)
        return batch, targets  # labels (or soft labels) from the loop

    def loss(self, inputs, targets):
        logits = self.logits(inputs)
        if targets.is_floating_point():  # soft targets: distillation
            return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
        return F.cross_entropy(logits.float(), targets, ignore_index=-1)


def strong_augment(batch, generator):
    """FixMatch's strong view, label-preserving: a larger shift, zoom and turn than
    fine-tuning's, and a cutout square (FixMatch's RandAugment without its flips and
    colour operations, which small grayscale images make no use of, plus Cutout)."""
    batch = random_affine(batch, generator, shift=0.15, scale=(0.85, 1.15), rotation=20.0)
    return cutout(batch, generator, size=(0.2, 0.4))


class SelfTrainingTask(PretextTask):
    """Self-training as FixMatch does it: online pseudo-labels, confident ones only,
    learned from a strongly augmented view [2]_.

    Each batch mixes labeled images (``targets >= 0``) and unlabeled ones. The
    labeled ones are learned as in fine-tuning; for each unlabeled one the network's
    prediction on a weakly augmented view is its label when the top probability
    reaches ``threshold``, and the loss asks the same prediction of a strongly
    augmented view: "the model's prediction on a weakly-augmented image is used as a
    pseudo-label only if it is confident; the model is trained to predict this
    pseudo-label when fed a strongly-augmented version of the same image" [2].
    """

    def __init__(self, network, threshold, *, unlabeled_weight=1.0):
        super().__init__()
        self.network = network
        self.backbone = network.backbone
        self.threshold = threshold
        self.unlabeled_weight = unlabeled_weight

    def parameter_groups(self):
        return self.network.parameter_groups()

    def logits(self, batch):
        return self.network.logits(batch)

    def views(self, batch, generator, targets=None):
        return self.network.views(batch, generator, targets)

    def loss(self, inputs, targets):
        return self.network.loss(inputs, targets)

    def forward(self, batch, generator, targets=None):
        labeled = targets >= 0
        n_labeled = int(labeled.sum())
        unlabeled = batch[~labeled]
        inputs = []  # the labeled images' views, then the unlabeled ones' strong views
        if len(unlabeled):  # a batch may hold none (few unlabeled rows), or only them
            with torch.no_grad():
                weak, _ = self.network.views(unlabeled, generator)
                confidence, guess = self.network.logits(weak).float().softmax(dim=1).max(dim=1)
            strong = strong_augment(unlabeled, generator)
        if n_labeled:
            inputs.append(self.network.views(batch[labeled], generator)[0])
        if len(unlabeled):
            inputs.append(strong)
        logits = self.network.logits(torch.cat(inputs)).float()  # (B, K)
        loss = F.cross_entropy(logits[:n_labeled], targets[labeled]) if n_labeled else logits.sum() * 0
        if len(unlabeled):
            per_image = F.cross_entropy(logits[n_labeled:], guess, reduction="none")
            loss = loss + self.unlabeled_weight * (per_image * (confidence >= self.threshold)).mean()
        return loss


class JointTask(PretextTask):
    """S4L's one objective: the pretext loss on every image plus the cross-entropy of
    the labeled ones, through one backbone [1].

    "we train a model on the union of labeled and unlabeled data, with a loss that is
    the weighted sum of the supervised loss on the labeled images and the
    self-supervised loss on all images" (paraphrasing [1], section 3).
    """

    def __init__(self, pretext, classifier, *, weight=1.0):
        super().__init__()
        self.pretext = pretext
        self.classifier = classifier
        self.backbone = pretext.backbone  # shared with the classifier
        self.weight = weight

    def views(self, batch, generator, targets=None):
        return self.pretext.views(batch, generator)

    def loss(self, inputs, targets):
        return self.pretext.loss(inputs, targets)

    def parameter_groups(self):
        return None  # one group: the joint objective trains everything alike

    def forward(self, batch, generator, targets=None):
        loss = self.pretext(batch, generator)
        labeled = targets >= 0
        if labeled.any():
            loss = loss + self.weight * self.classifier(batch[labeled], generator, targets[labeled])
        return loss

    def after_step(self, progress):
        self.pretext.after_step(progress)

    def start_training(self, images, value_range, generator):
        self._refuse_targets(self.pretext.start_training(images, value_range, generator))

    def start_epoch(self, images, value_range, generator):
        self._refuse_targets(self.pretext.start_epoch(images, value_range, generator))

    def _refuse_targets(self, pretext_targets):
        # the loop's per-image targets are the labels: a pretext task's own cannot travel too
        if pretext_targets is not None:
            raise ValueError(
                f"semi_supervised='s4l' needs a pretext task without per-image targets; "
                f"{type(self.pretext).__name__} makes its own. Use 'distill' or "
                f"'self_training' with this featurizer."
            )


def accuracy_on(images, codes, value_range):
    """``validation(network)``: the accuracy of ``network`` on fixed labeled images."""

    def validation(network):
        network.eval()
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(images), 512):
                batch = to_unit(images[start : start + 512], value_range)
                correct += int((network.logits(batch).argmax(dim=1) == codes[start : start + 512]).sum())
        return correct / len(images)

    return validation


@torch.no_grad()
def predict_proba(network, data, value_range, device, temperature=1.0):
    """Softmax of ``network``'s logits over ``temperature`` for every image, ``(n, K)`` float32."""
    network.eval()
    parts = [
        (network.logits(to_unit(rows, value_range)).float() / temperature).softmax(dim=1)
        for rows in chunks(data, device, 512)
    ]
    return torch.cat(parts).cpu().numpy()
