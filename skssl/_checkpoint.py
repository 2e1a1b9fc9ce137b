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
