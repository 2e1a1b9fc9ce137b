"""The parameter and attribute sections that every featurizer's docstring shares.

A class docstring holds placeholders (``%(common_parameters)s``, ``%(view_parameters)s``,
``%(common_attributes)s``) on lines of their own, at the section's indent;
:func:`fill_docstring` puts the shared text in their place, so that each shared
parameter is described once and ``help()`` and the API docs show it for every class.
"""

import dataclasses
import re

TEMPLATES = {
    "common_parameters": """\
    backbone : {"small_cnn", "wide_cnn", "resnet18", "vit_tiny", "mlp"}, nn.Module \
subclass or instance
        The network to pretrain. ``"wide_cnn"`` is a 3-conv network with batch norm
        (widths 32, 64, 128), ``"small_cnn"`` the same at the classic lab network's
        widths (64, 32, 16: 8x fewer features at ``conv3``);
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
        the small CNNs and ``"mlp"`` and averages otherwise.
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
        integer gives bit-identical embeddings at the same thread count (see
        ``n_threads``); the global torch RNG is untouched.
    verbose : int, default=0
        When > 0, show training progress on standard error: a progress bar
        (images, images/s, epoch, loss) on a terminal or in a notebook, one line
        per epoch elsewhere.
    n_threads : "auto" or int, default="auto"
        CPU threads for training. ``"auto"`` starts with torch's
        (``torch.set_num_threads``, ``OMP_NUM_THREADS``, ``threadpoolctl``'s limits)
        and lowers them while other processes keep cores busy, so that a fit beside
        another does not slow both down; the thread count changes the last digits of
        a result. An int trains on exactly that many threads, for bit-identical runs.
    warm_start : bool, default=False
        When True, ``fit`` resumes the run saved in ``checkpoint_dir`` if there is
        one (up to ``max_epochs`` in all, giving the same weights as an uninterrupted
        run); otherwise a fitted featurizer trains ``max_epochs`` more epochs. A
        checkpoint written by another class, with other parameters (all but those
        that say how long or how loudly to train) or for other data is refused
        with a ``ValueError`` saying what differs.
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
        Epochs between checkpoints (the last epoch is always saved).""",
    "view_parameters": """\
    crop_scale : tuple of 2 floats, default=(0.3, 1.0)
        Range of the area fraction kept by the random resized crop.
    flip_prob : float, default=0.0
        Probability of a horizontal flip (0 suits digits and text, where a mirror
        image is another symbol; 0.5 suits natural images).
    jitter_strength : float, default=0.5
        Colour jitter strength ``s`` of SimCLR: brightness, contrast and saturation
        factors in ``[1 - 0.8 s, 1 + 0.8 s]``, hue shift up to ``0.2 s``.
    blur_prob : float, default=0.0
        Probability of a Gaussian blur per view.""",
    "multi_crop_parameters": """\
    n_local_crops : int, default=0
        Extra small-area views per image, seen only by the prediction side
        (SwAV's "multi-crop"; 6 in SwAV, 10 in DINO). They are resized back to the
        full image size, like the global views: ``pool="flatten"`` needs one feature
        size, and on images this small a lower resolution would save little. On
        digits two local crops cost half as much again per epoch without improving
        the linear probe (at 10 and 30 epochs), hence the default of none.
    local_crop_scale : tuple of 2 floats, default=(0.1, 0.4)
        Range of the area fraction kept by a local crop ((0.05, 0.4) in DINO).""",
    "common_attributes": """\
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
        Epochs run.""",
}


def fill_docstring(cls):
    """Replace the placeholders of ``cls.__doc__`` with the shared sections; return ``cls``.

    A shared parameter whose default differs between classes (``max_epochs``,
    ``backbone``) is documented without one; the class's own is added to its line.
    """
    if cls.__doc__:
        # the placeholder carries the first line's indent; the templates carry the rest
        for name, text in TEMPLATES.items():
            cls.__doc__ = cls.__doc__.replace(f"%({name})s", text.lstrip())
        for field in dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ():
            if field.default is not dataclasses.MISSING:
                cls.__doc__ = re.sub(
                    rf"^(\s+{field.name} : (?:(?!default=).)*)$",
                    lambda match, default=field.default: _with_default(match.group(1), default),
                    cls.__doc__,
                    count=1,
                    flags=re.MULTILINE,
                )
    return cls


def _with_default(line, default):
    """``name : type`` with ``, default=...``; a word such as ``"auto"`` that a class
    allows where the shared type names none joins the type (``int or "auto"``)."""
    if isinstance(default, str) and '"' not in line:
        line = f"{line} or {_literal(default)}"
    return f"{line}, default={_literal(default)}"


def _literal(value):
    """A default as numpydoc writes it: strings in double quotes."""
    return f'"{value}"' if isinstance(value, str) else repr(value)
