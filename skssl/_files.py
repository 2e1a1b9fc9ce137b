"""The one error boundary for the files skssl reads and writes: models, checkpoints and
the command line's outputs.

Every failure comes out of :func:`read_file`, :func:`write_atomically`,
:func:`atomic_destination` and :func:`writable_folder` as a ``ValueError`` (not an
skssl file, damaged, written for something else) or an ``OSError`` of the right kind
(``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``, ...), naming the
path and the fix, without torch's text and without advice to load a file unsafely.
"""

import contextlib
import errno
import os
import pickle
import re
import secrets
import warnings
from pathlib import Path

import torch

# What a reader can be told and fix itself; any other OSError while reading is a damaged file.
_PATH_ERRORS = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM)


def read_file(path, *, what, fix, fix_path=None):
    """The content of the torch file ``path``, read without running any code from it.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the file should be, for the messages ("an skssl checkpoint").
    fix : str
        What the reader can do when the file is not that.
    fix_path : str, default=None
        What the reader can do when ``path`` cannot be opened; None: check it.

    Raises
    ------
    ValueError
        The file is damaged or holds more than tensors and plain data.
    OSError
        Of the kind and errno of the failure, when ``path`` cannot be opened.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols mean nothing to a reader
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        if exc.errno in _PATH_ERRORS:
            check = "permissions" if exc.errno in (errno.EACCES, errno.EPERM) else "path"
            unreadable = fix_path or f"Check the {check}."
            raise _path_error(exc.errno, f"Cannot read {path}: {_reason(exc.errno, path)}. {unreadable}") from None
        problem = "it is damaged (cut short or overwritten)"
    except pickle.UnpicklingError as exc:
        name = re.search(r"GLOBAL ([\w.]+)", str(exc))
        problem = (
            f"it refers to Python code ({name.group(1)}), which a file that skssl writes never "
            f"does; it may have been tampered with, and none of its code ran"
            if name
            else "it is damaged or holds objects that a file skssl writes never holds; none of it ran as code"
        )
    except MemoryError:
        raise
    except Exception:  # torch's reader on a cut-short or foreign file: the message would be torch's
        problem = "it is damaged (cut short or overwritten) or is not a file that skssl wrote"
    raise ValueError(f"{path} is not {what}: {problem}. {fix}")


def write_atomically(path, content, *, what, fix):
    """``torch.save`` ``content`` to ``path`` whole or not at all (see :func:`atomic_destination`).

    Raises
    ------
    OSError
        Of the kind and errno of the failure, naming ``path`` and ``fix``.
    """
    with atomic_destination(path, what=what, fix=fix) as partial:
        try:
            with open(partial, "wb") as handle:
                torch.save(content, handle)
        except OSError as exc:
            raise _write_error(exc, Path(path), what, fix) from None


@contextlib.contextmanager
def atomic_destination(path, *, what, fix):
    """The hidden file to write ``path``'s content to; it becomes ``path`` when the block ends.

    The file is created in the same folder before the block runs (so that a folder
    that is missing or not writable fails before any work) and renamed over ``path``
    when the block ends: a reader never sees a half-written file, and after a failure
    in the block a file already at ``path`` is left as it was and no partial file
    remains. Errors raised inside the block pass through unchanged.

    Raises
    ------
    OSError
        Of the kind and errno of the failure to create or rename the file, naming
        ``path`` and ``fix``.
    """
    path = Path(path)
    if path.is_dir():
        raise _path_error(errno.EISDIR, f"Cannot write {what} to {path}: {_reason(errno.EISDIR, path)}. {fix}")
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        partial.touch(exist_ok=False)
    except OSError as exc:
        raise _write_error(exc, path, what, fix) from None
    try:
        yield partial
        try:
            os.replace(partial, path)
        except OSError as exc:
            raise _write_error(exc, path, what, fix) from None
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _write_error(exc, path, what, fix):
    """The ``OSError`` for a failure ``exc`` to write ``what`` to ``path``, in words."""
    reason = _reason(exc.errno, path, writing=True) if exc.errno in _PATH_ERRORS else exc.strerror or str(exc)
    kept = " (the file already there is unchanged)" if path.is_file() else ""
    return _path_error(exc.errno, f"Cannot write {what} to {path}: {reason}{kept}. {fix}")


def writable_folder(folder, *, what, fix):
    """Create ``folder`` if need be and check that a file can be written in it.

    Raises
    ------
    OSError
        ``NotADirectoryError`` when ``folder`` or a part of it is a file,
        ``PermissionError`` when it cannot be created or written in, naming
        ``what`` and ``fix``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise _path_error(errno.ENOTDIR, f"{what} {folder} is a file, not a folder. {fix}")
    probe = folder / f".skssl-write-test-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        failed = Path(exc.filename) if exc.filename else probe
        reason = _reason(exc.errno, failed, writing=True) if exc.errno in _PATH_ERRORS else exc.strerror or str(exc)
        raise _path_error(exc.errno, f"{what} {folder} cannot hold files: {reason}. {fix}") from None


def _reason(code, path, writing=False):
    """Why ``path`` cannot be read or written, in words, for the errno ``code``."""
    denied = f"the folder {path.parent} is not writable" if writing else "permission denied"
    return {
        errno.ENOENT: "there is no such file" if path.parent.is_dir() else f"the folder {path.parent} does not exist",
        errno.ENOTDIR: f"a part of {path.parent} is a file, not a folder",
        errno.EISDIR: "it is a folder, not a file",
        errno.EACCES: denied,
        errno.EPERM: denied,
    }[code]


def _path_error(code, message):
    """An ``OSError`` of the subclass that ``code`` stands for (``OSError`` picks it)."""
    return OSError(code, message) if code is not None else OSError(message)
