"""A training run's state in one file, written atomically, read back without pickle.

The loop hands its state (weights, optimizer, schedule, random generator, history)
to ``on_epoch_end`` after every epoch; :func:`write` keeps it every ``every`` epochs
and after the last, and :func:`read` gives it back to resume the run. A file records
what it was written for (``meta``: the image shape, the classes, ...); resuming with
different data is refused instead of training the wrong weights further.
"""

import os
from pathlib import Path

import torch


def write(path, state, *, every, max_epochs, meta):
    """Write ``state`` and ``meta`` to ``path`` when the epoch is due, atomically."""
    epoch = state["history"][-1]["epoch"]
    if epoch % every and epoch != max_epochs:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save({**state, **meta}, partial)
    os.replace(partial, path)  # a reader never sees a half-written file


def read(path, *, meta):
    """The state saved at ``path``, or None when there is none.

    Raises a ``ValueError`` when the file was written for other ``meta`` (its
    values are compared as lists, as they come back from the file).
    """
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key, expected in meta.items():
        if _plain(state.get(key)) != _plain(expected):
            raise ValueError(
                f"The checkpoint {path} was written for {key.replace('_', ' ')} "
                f"{_plain(state.get(key))}, not {_plain(expected)}; use another "
                f"checkpoint_dir or warm_start=False."
            )
    return state


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


class CheckpointMixin:
    """``checkpoint_dir`` for an estimator: one file per training stage, written every
    ``checkpoint_every`` epochs and read back when ``warm_start`` is set."""

    def _checkpoint_meta(self):
        """What a checkpoint must have been written for to be resumed."""
        return {"image_shape": list(self.image_shape_)}

    def _checkpoint_writer(self, stage, max_epochs):
        """The loop's ``on_epoch_end`` for ``stage``, or None without ``checkpoint_dir``."""
        if self.checkpoint_dir is None:
            return None
        return lambda state: write(
            Path(self.checkpoint_dir) / f"{stage}.pt",
            state,
            every=self.checkpoint_every,
            max_epochs=max_epochs,
            meta=self._checkpoint_meta(),
        )

    def _read_checkpoint(self, stage):
        """The saved state of ``stage`` to resume, or None (no ``warm_start``, no file)."""
        if not self.warm_start or self.checkpoint_dir is None:
            return None
        return read(Path(self.checkpoint_dir) / f"{stage}.pt", meta=self._checkpoint_meta())
