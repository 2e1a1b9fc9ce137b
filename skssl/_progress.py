"""What ``verbose=1`` shows while a network trains.

A terminal or a notebook gets a live bar (``tqdm.auto``: a widget in Jupyter) that
counts images, their rate, the epoch and the last epoch's loss. Any other output (a
log file, CI, a pipe) gets epoch lines instead, since a bar redrawn there is noise:
at most one each ``LINE_INTERVAL`` seconds (and the last) with ``verbose=1``, every
epoch with ``verbose=2``.
"""

import sys
import time

from tqdm.auto import tqdm

LINE_INTERVAL = 10.0  # seconds between epoch lines at verbose=1


def _live_output(stream):
    """True for a terminal, or for a Jupyter kernel (whose streams are not terminals)."""
    if getattr(stream, "isatty", lambda: False)():
        return True
    if "IPython" not in sys.modules:  # no kernel without it; importing it costs a second
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class Progress:
    """Reports one run of the training loop; silent unless ``verbose``.

    Parameters
    ----------
    verbose : int
        0 says nothing; 1 shows the bar, or an epoch line each ``LINE_INTERVAL``
        seconds; 2 and more, a line every epoch where there is no bar.
    description : str
        What trains (``"RotNetFeaturizer"``), the bar's label.
    max_epochs, first_epoch : int
        The run's last epoch and the one it starts at (after a resumed run's).
    steps_per_epoch, batch_size : int
        The bar counts ``steps_per_epoch * batch_size`` images an epoch.
    stream : file-like, default=None
        Where it writes; None is ``sys.stderr``, read when the run starts.
    """

    def __init__(self, verbose, description, *, max_epochs, first_epoch, steps_per_epoch, batch_size, stream=None):
        self.verbose = verbose
        self.description = description
        self.max_epochs = max_epochs
        self.stream = sys.stderr if stream is None else stream
        self.bar = None
        if verbose and _live_output(self.stream):
            self.bar = tqdm(
                total=(max_epochs - first_epoch + 1) * steps_per_epoch * batch_size,
                desc=description,
                unit="img",
                unit_scale=True,
                file=self.stream,
                dynamic_ncols=True,
                leave=True,
            )
            self.bar.set_postfix_str(f"epoch {first_epoch}/{max_epochs}", refresh=False)
        self.images_per_step = batch_size
        self.images_per_epoch = steps_per_epoch * batch_size
        self.last_line = -float("inf")

    def step(self):
        if self.bar is not None:
            self.bar.update(self.images_per_step)

    def end_epoch(self, record):
        """After each epoch: the bar's postfix, or one line."""
        if not self.verbose:
            return
        score = f"validation {record['validation_score']:.4f}  " if "validation_score" in record else ""
        if self.bar is not None:
            epoch = min(record["epoch"] + 1, self.max_epochs)
            self.bar.set_postfix_str(f"epoch {epoch}/{self.max_epochs}  loss {record['loss']:.4f}  {score}".rstrip())
            return
        now = time.monotonic()
        if self.verbose < 2 and now - self.last_line < LINE_INTERVAL and record["epoch"] < self.max_epochs:
            return
        self.last_line = now
        print(
            f"{self.description} epoch {record['epoch']:>3}/{self.max_epochs}  loss {record['loss']:.4f}  {score}"
            f"{self.images_per_epoch / record['seconds']:.0f} img/s  {record['seconds']:.1f}s",
            file=self.stream,
            flush=True,
        )

    def say(self, message):
        """A line beside the bar (early stopping), without breaking it."""
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
