"""The training loop every pretext method shares.

The whole training set sits on the training device (uint8 stays uint8); a batch is
a slice of a ``randperm`` drawn from the fit's own generator, scaled to [0, 1] there,
and handed to the task, which builds its views and returns the loss. There is no
DataLoader and no worker process: for images this small, the model is the cost.
A set bigger than memory stays a NumPy memmap and each batch's rows are read from it.
Under ``torchrun`` every process takes its share of each global batch
(:mod:`skssl._distributed`).
"""

import math
import time
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning

from . import _distributed
from ._data import to_tensor
from ._progress import Progress
from ._threads import ThreadBudget


def to_unit(batch, value_range):
    """Map raw pixel values onto [0, 1] as float32 (computing in float64 for float64)."""
    low, high = value_range
    wide = batch.dtype == torch.float64
    return ((batch if wide else batch.float()) - low).div_(high - low).float()


def uses_bfloat16(device_type, precision="auto"):
    """Whether ``precision`` means bfloat16 autocast on a ``device_type`` device.

    ``"auto"`` is bfloat16 on CUDA and float32 elsewhere.
    """
    return precision == "bfloat16" or (precision == "auto" and device_type == "cuda")


def autocast(device, precision="auto"):
    """The autocast context of ``precision`` on ``device``: bfloat16, or disabled."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bfloat16(device.type, precision))


def take(images, indices, device):
    """The rows ``indices`` of the training set, on ``device`` in their own dtype.

    ``images`` is a tensor already on the device, or a NumPy array (a memmap of a set
    bigger than memory) whose rows are read here, one batch at a time.
    """
    if isinstance(images, torch.Tensor):
        return images[indices]
    return to_tensor(images[indices.cpu().numpy()], device, pin=True)


def chunks(images, device, size=4096):
    """``images`` as consecutive tensors of at most ``size`` rows on ``device``."""
    for start in range(0, len(images), size):
        rows = images[start : start + size]
        yield rows if isinstance(rows, torch.Tensor) else to_tensor(rows, device)


def unit_batches(images, device, value_range, size=512):
    """``images`` as consecutive [0, 1] float32 batches of at most ``size`` on ``device``:
    how fitted networks read images for predictions and features."""
    for rows in chunks(images, device, size):
        yield to_unit(rows, value_range)


def _snapshot(module):
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


class History(list):
    """The per-epoch records of a run; ``interrupted`` tells whether Ctrl-C ended it."""

    interrupted = False


def channel_stats(data, value_range, device, chunk=4096):
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


def parameter_groups(task, learning_rate):
    """AdamW's parameter groups: ``task.parameter_groups()`` when it gives them (a list
    of ``{"params", "lr_scale"}``), else one group of every trainable parameter."""
    groups = task.parameter_groups()
    if groups is None:
        groups = [{"params": [p for p in task.parameters() if p.requires_grad]}]
    return [{"params": list(group["params"]), "lr": learning_rate * group.get("lr_scale", 1.0)} for group in groups]


class Run:
    """The optimizer, the schedule and the bookkeeping of one training run: what a
    checkpoint saves and what the epochs share.

    The learning rate follows a cosine decay over the run's ``total_steps``; ``best``
    holds the best validation score and its weights.
    """

    def __init__(self, task, learning_rate, weight_decay, total_steps, device, generator):
        self.task = task
        self.generator = generator
        self.optimizer = torch.optim.AdamW(
            parameter_groups(task, learning_rate),
            lr=learning_rate,
            weight_decay=weight_decay,
            fused=device.type in ("cpu", "cuda"),  # one kernel for every parameter, not a loop
        )
        self.total_steps = max(1, total_steps)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.total_steps)
        self.history = History()
        self.best = {"score": -math.inf, "weights": None}
        self.last_good = None

    def resume(self, state):
        """Continue from a state that :meth:`state` returned.

        A run resumed with more epochs than it was written for decays its learning
        rate to zero at its new end, not at the old one.
        """
        self.task.load_state_dict(state["task"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.schedule.T_max = self.total_steps  # the saved schedule knows the old length
        self.generator.set_state(state["generator"])
        self.history.extend(state["history"])
        if state.get("best_weights") is not None:
            self.best = {"score": state["best_score"], "weights": state["best_weights"]}

    def step(self, loss):
        """One optimizer step on ``loss``; then the task's ``after_step`` hook."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.task.after_step(self.schedule.last_epoch / self.total_steps)

    def state(self):
        """The run's state after the last completed epoch, for a checkpoint."""
        return {
            "task": self.last_good,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "history": list(self.history),
            "best_score": self.best["score"],
            "best_weights": self.best["weights"],
        }


class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement of ``tol`` in ``progress``
    (minus the loss, or a validation score); never when ``patience`` is None."""

    def __init__(self, patience, tol):
        self.patience, self.tol = patience, tol
        self.best, self.epochs_without_improvement = -math.inf, 0

    def should_stop(self, progress):
        if self.patience is None:
            return False
        if progress > self.best + self.tol:
            self.best, self.epochs_without_improvement = progress, 0
        else:
            self.epochs_without_improvement += 1
        return self.epochs_without_improvement >= self.patience


def train(
    task,
    images,
    *,
    value_range,
    batch_size,
    max_epochs,
    learning_rate,
    weight_decay,
    generator,
    verbose=0,
    n_threads="auto",
    tol=1e-4,
    n_iter_no_change=None,
    resume=None,
    on_epoch_end=None,
    targets=None,
    device=None,
    precision="auto",
    compile=False,
    validation=None,
    estimator_name="featurizer",
    description=None,
):
    """Fit ``task`` on ``images`` and return the per-epoch history.

    Parameters
    ----------
    task : PretextTask
        ``task(batch, generator, targets)`` returns the scalar loss of a [0, 1]
        batch; its hooks (``start_training``, ``start_epoch``, ``after_step``,
        ``parameter_groups``) run as :mod:`skssl.task` describes.
    images : Tensor or ndarray of shape (n, C, H, W)
        The training set, already on the training device, or a NumPy array (memmap)
        streamed to ``device`` a batch at a time.
    value_range : tuple of float
        ``(low, high)`` raw values mapped to 0 and 1.
    batch_size : int
        Source images per step; the last incomplete batch of an epoch is dropped
        unless it is the only one.
    max_epochs : int
        Epochs of the run (including those of a resumed run).
    learning_rate, weight_decay : float
        AdamW settings; the learning rate follows a cosine decay over all steps.
    generator : torch.Generator
        On the training device; drives shuffling and the task's randomness.
    verbose : int, default=0
        When > 0, a progress bar on a terminal or in a notebook, else one line per
        epoch, on standard error (:class:`skssl._progress.Progress`).
    n_threads : "auto" or int, default="auto"
        CPU threads: ``"auto"`` lowers torch's to the cores other processes leave
        free, an int trains on exactly that many (:class:`skssl._threads.ThreadBudget`).
    tol : float, default=1e-4
        Improvement of the epoch loss that counts, for early stopping.
    n_iter_no_change : int or None, default=None
        Stop after this many epochs without an improvement of ``tol``; None trains
        all ``max_epochs``.
    resume : dict or None
        A state from ``on_epoch_end`` to continue from.
    on_epoch_end : callable or None
        Called with the run's state after every epoch (for checkpoints).
    targets : Tensor of shape (n,) or (n, n_classes), or None
        Per-image targets on the training device (labels, or soft labels to distil):
        each batch's rows are passed as ``task(batch, generator, targets)``.
    device : torch.device, default=None
        The training device; defaults to ``images.device``.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Autocast to bfloat16 (``"auto"``: on CUDA only), see :func:`autocast`.
    compile : bool, default=False
        Run the steps through ``torch.compile``; ``task`` itself stays uncompiled.
    validation : callable or None, default=None
        ``validation(task)`` scores the task after every epoch (higher is better).
        Early stopping (``n_iter_no_change``) then watches this score instead of the
        loss, and the weights of the best-scoring epoch are restored at the end.
    estimator_name : str, default="featurizer"
        What the error on divergence says is left unfitted.
    description : str, default=None
        The progress bar's label; None is ``estimator_name``.

    Returns
    -------
    history : History (a list of dict)
        ``{"epoch", "loss", "seconds"}`` per completed epoch (and
        ``"validation_score"`` with ``validation``). On ``KeyboardInterrupt`` the
        weights of the last completed epoch are restored and the history so far is
        returned with ``history.interrupted`` set, with a warning.
    """
    n_images = images.shape[0]
    device = images.device if device is None else device
    batch_size = _checked_batch_size(batch_size, n_images)
    steps_per_epoch = n_images // batch_size
    run_targets = task.start_training(images, value_range, generator)
    run = Run(task, learning_rate, weight_decay, steps_per_epoch * max_epochs, device, generator)
    if resume is not None:
        run.resume(resume)
    model = _distributed.wrap(task)  # DistributedDataParallel under torchrun
    if compile:
        model = torch.compile(model)  # a wrapper: the fitted task pickles as usual
    mixed = autocast(device, precision)
    epoch_settings = dict(value_range=value_range, batch_size=batch_size, device=device, mixed=mixed)
    stopping = EarlyStopping(n_iter_no_change, tol)
    main = _distributed.is_main_process()
    progress = Progress(
        verbose if main else 0,
        description or estimator_name,
        max_epochs=max_epochs,
        first_epoch=len(run.history) + 1,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
    )
    run.last_good = _snapshot(task)
    task.train()
    budget = ThreadBudget(device, n_threads).start()

    def after_step():
        progress.step()
        budget.check()

    try:
        for epoch in range(len(run.history) + 1, max_epochs + 1):
            start = time.perf_counter()
            epoch_targets = task.start_epoch(images, value_range, generator)
            if epoch_targets is None:
                epoch_targets = run_targets if run_targets is not None else targets
            epoch_loss = _run_epoch(run, model, images, epoch_targets, after_step=after_step, **epoch_settings)
            _check_finite(epoch_loss, epoch, estimator_name, learning_rate)
            record = _end_epoch(run, epoch, epoch_loss, time.perf_counter() - start, validation)
            progress.end_epoch(record)
            if on_epoch_end is not None and main:  # one process writes
                on_epoch_end(run.state())
            if stopping.should_stop(-epoch_loss if validation is None else record["validation_score"]):
                watched = "loss" if validation is None else "validation score"
                progress.say(f"{watched} did not improve by {tol=} for {n_iter_no_change} epochs; stopping")
                break
        else:
            if n_iter_no_change is not None and run.history:
                warnings.warn(
                    f"The training {'loss' if validation is None else 'validation score'} "
                    f"was still improving after max_epochs={max_epochs}; consider more epochs.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
    except KeyboardInterrupt:
        task.load_state_dict(run.last_good)
        run.history.interrupted = True
        warnings.warn(
            f"Training interrupted; keeping the weights of the last completed epoch "
            f"({len(run.history)} of {max_epochs}).",
            UserWarning,
            stacklevel=3,
        )
    finally:
        budget.close()
    progress.close()
    if run.best["weights"] is not None and not run.history.interrupted:
        task.load_state_dict(run.best["weights"])  # early stopping keeps the best epoch
    task.eval()
    return run.history


def _checked_batch_size(batch_size, n_images):
    if batch_size > n_images:
        warnings.warn(
            f"batch_size={batch_size} is larger than the {n_images} training images; "
            f"using batches of {n_images}. Pass a smaller batch_size to silence this.",
            UserWarning,
            stacklevel=4,
        )
        return n_images
    return batch_size


def _check_finite(epoch_loss, epoch, estimator_name, learning_rate):
    if not math.isfinite(epoch_loss):
        raise ValueError(
            f"The training loss became {epoch_loss} in epoch {epoch}; training diverged and the "
            f"{estimator_name} is not fitted. Use a smaller learning_rate (now {learning_rate:g})."
        )


def _run_epoch(run, model, images, targets, *, value_range, batch_size, device, mixed, after_step):
    """One pass over a random order of ``images``; returns the mean loss of its steps."""
    generator = run.generator
    steps_per_epoch = len(images) // batch_size
    order = torch.randperm(len(images), generator=generator, device=generator.device)
    total = torch.zeros((), device=device)
    for step in range(steps_per_epoch):
        # every process draws the same order and takes its share of the batch
        indices = _distributed.shard(order[step * batch_size : (step + 1) * batch_size])
        batch = to_unit(take(images, indices, device), value_range)
        with mixed:
            if targets is None:
                loss = model(batch, generator)
            else:  # labels or pseudo-labels travel with the images
                loss = model(batch, generator, take(targets, indices, device))
        run.step(loss)
        total += loss.detach()
        after_step()
    return float(_distributed.all_mean(total)) / steps_per_epoch  # one host sync per epoch


def _end_epoch(run, epoch, epoch_loss, seconds, validation):
    """Record a completed epoch: its weights (the last good ones), its validation score."""
    record = {"epoch": epoch, "loss": epoch_loss, "seconds": seconds}
    _distributed.broadcast_buffers(run.task)  # every process ends the epoch with one model
    run.last_good = _snapshot(run.task)
    if validation is not None:
        record["validation_score"] = float(validation(run.task))
        run.task.train()
        if record["validation_score"] > run.best["score"]:
            run.best = {"score": record["validation_score"], "weights": run.last_good}
    run.history.append(record)
    return record
