import io
import subprocess
import sys

import numpy as np
import pytest

from skssl import cli
from skssl.cli import demo, main


@pytest.fixture
def short_fine_tuning(monkeypatch):
    """The demo's classifiers on a tiny budget: these tests check the table, not the accuracy."""
    monkeypatch.setattr(cli, "FINE_TUNING", {**cli.FINE_TUNING, "max_epochs": 2, "semi_supervised_epochs": 1})


def test_demo_prints_a_row_per_method(capsys, short_fine_tuning):
    assert main(["demo", "--max-epochs", "1", "--methods", "vicreg,byol"]) == 0
    captured = capsys.readouterr()
    assert "VICRegFeaturizer" in captured.out and "BYOLFeaturizer" in captured.out
    assert "SimCLRFeaturizer" not in captured.out
    for column in ("frozen", "fine-tuned", "self-train", "labels only", "random init", "raw pixels"):
        assert column in captured.out
    assert "of 2 methods" in captured.out  # the summary counts what the table shows
    assert "pretext training on 898 unlabeled images" in captured.err  # progress, apart


def test_demo_returns_the_table(short_fine_tuning):
    rows = demo(methods=["simclr"], max_epochs=1, out=io.StringIO(), progress=io.StringIO())
    (row,) = rows
    assert row["method"] == "SimCLRFeaturizer"
    for key in (
        "probe_accuracy",
        "fine_tuned_accuracy",
        "self_trained_accuracy",
        "supervised_accuracy",
        "random_init_accuracy",
        "raw_pixel_accuracy",
    ):
        assert 0.1 < row[key] <= 1.0
    assert row["pretext_seconds"] > 0


def test_unknown_method_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--methods", "nope"])
    assert "unknown method" in capsys.readouterr().err


def test_python_dash_m_runs():
    result = subprocess.run([sys.executable, "-m", "skssl", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in result.stdout


@pytest.mark.slow
def test_demo_shows_the_promise_over_seeds():
    """The main job's claim, at its defaults, on the 899 test digits at seeds 0, 1, 2:
    each method's fine-tuned network beats the same network trained on the labels
    alone, raw pixels and its own random-init features, and reaches 0.96."""
    for seed in (0, 1, 2):
        rows = demo(random_state=seed, out=io.StringIO(), progress=io.StringIO())
        for row in rows:
            assert row["fine_tuned_accuracy"] > row["supervised_accuracy"], (seed, row)
            assert row["fine_tuned_accuracy"] > row["raw_pixel_accuracy"], (seed, row)
            assert row["fine_tuned_accuracy"] > row["random_init_accuracy"], (seed, row)
            assert row["fine_tuned_accuracy"] >= 0.96, (seed, row)
            assert np.isfinite(row["pretext_seconds"])


def test_methods_lists_every_registered_method(capsys):
    from skssl.registry import METHODS

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "estimator", "layer", "epochs"]
    assert [line.split()[0] for line in lines[1:]] == list(METHODS)
    rotnet = next(line for line in lines if line.startswith("rotnet "))
    assert rotnet.split()[1:4] == ["RotNetFeaturizer", "conv2", "30"] and "ICLR 2018" in rotnet
