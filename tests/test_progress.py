import io
import sys

import numpy as np
import pytest

from skssl import FineTunedClassifier, RotNetFeaturizer
from skssl._progress import Progress, _live_output

from _testing import TINY


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _record(epoch, loss=0.5, seconds=0.25):
    return {"epoch": epoch, "loss": loss, "seconds": seconds}


def _progress(stream, verbose=1, **settings):
    settings = {"max_epochs": 2, "first_epoch": 1, "steps_per_epoch": 3, "batch_size": 4, **settings}
    return Progress(verbose, "RotNetFeaturizer", stream=stream, **settings)


def test_a_terminal_gets_a_bar_counting_images_epochs_and_the_loss():
    stream = Terminal()
    progress = _progress(stream)
    for epoch in (1, 2):
        for _ in range(3):
            progress.step()
        progress.end_epoch(_record(epoch, loss=1.0 / epoch))
    progress.close()
    shown = stream.getvalue()
    assert progress.bar.n == 24 and progress.bar.total == 24  # 2 epochs x 3 steps x 4 images
    assert "RotNetFeaturizer" in shown and "img/s" in shown
    assert "epoch 2/2" in shown and "loss 0.5000" in shown


def test_a_resumed_run_counts_only_the_epochs_left():
    progress = _progress(Terminal(), max_epochs=5, first_epoch=4)
    assert progress.bar.total == 2 * 3 * 4
    progress.close()


def test_a_log_file_gets_epoch_lines_with_the_rate():
    stream = io.StringIO()  # not a terminal, no notebook
    progress = _progress(stream, verbose=2)
    for epoch in (1, 2):
        progress.end_epoch(_record(epoch))
    progress.say("stopping")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert progress.bar is None
    assert lines == [
        "RotNetFeaturizer epoch   1/2  loss 0.5000  48 img/s  0.2s",
        "RotNetFeaturizer epoch   2/2  loss 0.5000  48 img/s  0.2s",
        "stopping",
    ]


def test_verbose_1_writes_a_line_at_most_every_few_seconds_and_the_last():
    stream = io.StringIO()
    progress = _progress(stream, max_epochs=50)
    for epoch in range(1, 51):  # fast epochs: the first line, then the last
        progress.end_epoch(_record(epoch))
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/50", "50/50"]


@pytest.mark.parametrize("stream_class", [Terminal, io.StringIO])
def test_verbose_0_says_nothing(stream_class):
    stream = stream_class()
    progress = _progress(stream, verbose=0)
    progress.step()
    progress.end_epoch(_record(1))
    progress.say("stopping")
    progress.close()
    assert stream.getvalue() == "" and progress.bar is None


def test_a_fit_shows_its_bar_on_a_terminal(digits, monkeypatch):
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    X, _ = digits
    RotNetFeaturizer(**{**TINY, "max_epochs": 2, "verbose": 1}).fit(X)
    shown = stream.getvalue()
    assert "RotNetFeaturizer" in shown and "epoch 2/2" in shown and "img" in shown


def test_the_classifier_names_its_stages(digits, capsys):
    X, y = digits
    y = np.where(np.arange(len(y)) % 3 == 0, y, -1)
    featurizer = RotNetFeaturizer(**{**TINY, "max_epochs": 1})
    FineTunedClassifier(featurizer, max_epochs=1, semi_supervised_epochs=1, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "RotNetFeaturizer epoch   1/1" in err
    assert "FineTunedClassifier fine-tune epoch   1/1" in err
    assert "FineTunedClassifier semi-supervised epoch   1/1" in err


def test_a_jupyter_kernel_counts_as_live_output_though_its_streams_are_no_terminals(monkeypatch):
    class Shell:
        config = {"IPKernelApp": {}}

    class IPython:
        shell = None

        @classmethod
        def get_ipython(cls):
            return cls.shell

    monkeypatch.setitem(sys.modules, "IPython", IPython)
    assert not _live_output(io.StringIO())  # IPython in a terminal, or imported without a shell
    IPython.shell = Shell()
    assert _live_output(io.StringIO())
