"""A training run's state in one file, written atomically, read back without pickle.

The loop hands its state (weights, optimizer, schedule, random generator, history)
to ``on_epoch_end`` after every epoch; :func:`write` keeps it every ``every`` epochs
and after the last, and :func:`read` gives it back to resume the run.

A file records whose run it is: the estimator's class and every parameter that
shapes the network or the objective (all but :data:`RUN_PARAMETERS`), the data it
trained on (image shape, number of images, classes) and its format. Resuming refuses
a file written for anything else and says what differs, instead of training the
wrong weights further; a damaged file is refused before anything is loaded from it
(:func:`check_fits`). Files are read and written through :mod:`skssl._persistence`'s
error boundary.
"""

import errno
import json
from pathlib import Path

import torch

from . import _distributed
from ._files import read_file, writable_folder, write_atomically
from ._persistence import decode, describe_parameters, weight_mismatches
from ._training import parameter_groups
from ._version import __version__

CHECKPOINT_FORMAT = 1
_META = "skssl_checkpoint"  # the key of the JSON record of whose run a file is

#: Parameters a run may be resumed under other values of: how long it trains, where
#: and in what arithmetic, how loudly, and where its checkpoints and caches go.
#: Training longer (``max_epochs``) is the common use. ``learning_rate``,
#: ``weight_decay`` and ``random_state`` are not among them: the saved optimizer,
#: schedule and random generator carry the old values and would silently override new
#: ones. Nor is ``batch_size``: it sets the steps of the saved schedule (and the
#: negatives of a contrastive loss), so a resumed run would match no uninterrupted one.
RUN_PARAMETERS = frozenset(
    {
        "max_epochs",
        "semi_supervised_epochs",
        "n_iter_no_change",
        "tol",
        "verbose",
        "n_threads",
        "device",
        "precision",
        "compile",
        "memory",
        "warm_start",
        "checkpoint_dir",
        "checkpoint_every",
    }
)

_FIX = "Use another checkpoint_dir, or warm_start=False to start afresh (the file is then overwritten)."
_WRITE_FIX = "Choose a checkpoint_dir you can write to, or checkpoint_dir=None."
_DATA = {"image_shape": "image shape {}", "n_samples": "{} images", "classes": "classes {}"}
_STATE = {"task": dict, "optimizer": dict, "schedule": dict, "generator": torch.Tensor, "history": list}


def write(path, state, *, every, max_epochs, meta):
    """Write ``state`` and ``meta`` to ``path`` when the epoch is due, atomically."""
    epoch = state["history"][-1]["epoch"]
    if epoch % every and epoch != max_epochs:
        return
    record = {"format": CHECKPOINT_FORMAT, "skssl": __version__, **meta}
    write_atomically(path, {**state, _META: json.dumps(record)}, what="the checkpoint", fix=_WRITE_FIX)


def read(path, *, meta):
    """The state saved at ``path``, or None when there is none.

    Raises a ``ValueError`` when the file is damaged, is not an skssl checkpoint, or
    was written for another ``meta`` (estimator, parameters or data), naming what differs.
    """
    path = Path(path)
    if not path.exists():
        return None
    state = read_file(path, what="an skssl checkpoint", fix=_FIX, fix_path=_FIX)
    written = _record(state, path)
    current = json.loads(json.dumps(meta))  # tuples as lists, as they come back from the file
    _check_estimator(written.get("estimator"), current["estimator"], path)
    differences = [
        f"written for {_DATA[key].format(written.get(key))}, not {current[key]}"
        for key in _DATA
        if key in current and written.get(key) != current[key]
    ]
    if differences:
        raise ValueError(f"The checkpoint {path} was {'; '.join(differences)}. {_FIX}")
    _check_state(state, path)
    return state


def check_fits(state, task, path):
    """Refuse ``state`` (a ``ValueError``) unless it resumes ``task`` whole: the same
    weights, optimizer state and random generator, in shape and kind."""
    expected = task.state_dict()
    problems = weight_mismatches(state["task"], expected)
    if not problems and state.get("best_weights") is not None:
        problems = weight_mismatches(state["best_weights"], expected)
    problems = problems or _optimizer_mismatch(state["optimizer"], task)
    device = next(iter(expected.values())).device
    if not problems and state["generator"].numel() != torch.Generator(device).get_state().numel():
        problems = f"its random generator's state is not one of a {device.type} generator (written on another device?)"
    if problems:
        raise ValueError(f"The checkpoint {path} is damaged or belongs to another run: {problems}. {_FIX}")


def _record(state, path):
    """The JSON record of whose run ``state`` is, checked for its format."""
    if not isinstance(state, dict) or "task" not in state:
        raise ValueError(f"{path} is not an skssl checkpoint. {_FIX}")
    if _META not in state:
        raise ValueError(
            f"The checkpoint {path} was written by an earlier skssl, which did not record the "
            f"estimator and parameters it was written for; it cannot be checked, so it is not resumed. {_FIX}"
        )
    try:
        record = json.loads(state[_META])
    except (TypeError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("estimator"), dict):
        raise ValueError(f"The checkpoint {path} is damaged: its record of whose run it is cannot be read. {_FIX}")
    if record.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"The checkpoint {path} has format {record.get('format')} (written by skssl "
            f"{record.get('skssl')}); this skssl {__version__} resumes format {CHECKPOINT_FORMAT}. {_FIX}"
        )
    return record


def _check_estimator(written, current, path):
    """Refuse a checkpoint of another estimator class or other parameters, naming them."""
    if written.get("class") != current["class"]:
        raise ValueError(
            f"The checkpoint {path} was written by a {written.get('class')}, not a {current['class']}: "
            f"resuming it would train the wrong weights. {_FIX}"
        )
    differences = _differences(written, current, "")
    if differences:
        raise ValueError(
            f"The checkpoint {path} was written with other parameters: {', '.join(differences)}. "
            f"Resume with the values it was written with. {_FIX}"
        )


def _differences(written, current, prefix):
    """``"name=written (now current)"`` for every parameter of two descriptions that
    differs; an estimator's parameters are named ``"featurizer.name"``."""
    if written.get("class") != current.get("class"):
        return [f"{prefix.rstrip('.') or 'estimator'}={written.get('class')} (now {current.get('class')})"]
    saved, now = written.get("parameters", {}), current.get("parameters", {})
    differences = []
    for name in sorted(saved.keys() | now.keys()):
        a, b = saved.get(name), now.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and "__estimator__" in a and "__estimator__" in b:
            differences += _differences(a["__estimator__"], b["__estimator__"], f"{prefix}{name}.")
        else:
            differences.append(f"{prefix}{name}={_shown(a)} (now {_shown(b)})")
    return differences


def _shown(value):
    try:
        return repr(decode(value))
    except Exception:  # a value this skssl cannot decode: show it as it is in the file
        return json.dumps(value)


def _check_state(state, path):
    """Refuse a state that lacks a part of a run or holds a part of the wrong kind."""
    wrong = [key for key, kind in _STATE.items() if not isinstance(state.get(key), kind)]
    if not wrong and not all(isinstance(record, dict) and "epoch" in record for record in state["history"]):
        wrong = ["history"]
    if not wrong and not isinstance(state["optimizer"].get("param_groups"), list):
        wrong = ["optimizer"]
    if not wrong and not isinstance(state.get("best_weights"), (dict, type(None))):
        wrong = ["best_weights"]
    if wrong:
        raise ValueError(f"The checkpoint {path} is damaged: its {', '.join(wrong)} is missing or malformed. {_FIX}")


def _optimizer_mismatch(saved, task):
    """How the saved optimizer state differs from one of ``task``'s trainable parameters, or ""."""
    groups = [list(group["params"]) for group in parameter_groups(task, 1.0)]
    try:
        saved_groups = [list(group["params"]) for group in saved["param_groups"]]
        states = saved.get("state", {})
        sizes, trained = [len(group) for group in saved_groups], [len(group) for group in groups]
        if sizes != trained:
            return f"its optimizer holds parameter groups of sizes {sizes}, the network trains {trained}"
        for index, parameter in zip((i for g in saved_groups for i in g), (p for g in groups for p in g)):
            for name, value in states.get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != parameter.shape:
                    return f"its optimizer's {name} has shape {tuple(value.shape)}, not {tuple(parameter.shape)}"
    except (KeyError, TypeError, AttributeError):
        return "its optimizer state is malformed"
    return ""


class CheckpointMixin:
    """``checkpoint_dir`` for an estimator: one file per training stage, written every
    ``checkpoint_every`` epochs and read back when ``warm_start`` is set."""

    def _checkpoint_meta(self, n_samples):
        """What a checkpoint must have been written for to be resumed: the estimator
        and its parameters, the image shape and the number of training images."""
        return {
            "estimator": describe_parameters(self, RUN_PARAMETERS),
            "image_shape": list(self.image_shape_),
            "n_samples": int(n_samples),
        }

    def _checkpoint_path(self, stage):
        return Path(self.checkpoint_dir) / f"{stage}.pt"

    def _check_checkpoint_dir(self):
        """Create ``checkpoint_dir`` and check that it can hold files, if it is set
        (on the main process, the one that writes: under torchrun the others never do)."""
        if self.checkpoint_dir is not None and _distributed.is_main_process():
            writable_folder(self.checkpoint_dir, what="checkpoint_dir", fix=_WRITE_FIX)

    def _checkpoint_writer(self, stage, max_epochs, n_samples):
        """The loop's ``on_epoch_end`` for ``stage``, or None without ``checkpoint_dir``.

        The folder is created and checked now, so that an unwritable one fails the
        fit before its first epoch rather than after it.
        """
        if self.checkpoint_dir is None:
            return None
        self._check_checkpoint_dir()
        path, meta = self._checkpoint_path(stage), self._checkpoint_meta(n_samples)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, f"Cannot write the checkpoint {path}: it is a folder. {_WRITE_FIX}")
        return lambda state: write(path, state, every=self.checkpoint_every, max_epochs=max_epochs, meta=meta)

    def _read_checkpoint(self, stage, n_samples):
        """The saved state of ``stage`` to resume, or None (no ``warm_start``, no file)."""
        if not self.warm_start or self.checkpoint_dir is None:
            return None
        return read(self._checkpoint_path(stage), meta=self._checkpoint_meta(n_samples))

    def _check_resume(self, stage, state, task):
        """Refuse the saved ``state`` of ``stage`` unless it fits ``task`` whole."""
        if state is not None:
            check_fits(state, task, self._checkpoint_path(stage))
