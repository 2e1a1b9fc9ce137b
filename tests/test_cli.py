import subprocess
import sys

import pytest

from skssl.cli import demo, main


def test_demo_prints_a_row_per_method(capsys):
    assert main(["demo", "--max-epochs", "1", "--methods", "rotnet,denoising"]) == 0
    out = capsys.readouterr().out
    assert "RotNetFeaturizer" in out and "DenoisingAEFeaturizer" in out
    assert "SimCLRFeaturizer" not in out
    assert "probe acc" in out and "raw pixels" in out


def test_demo_returns_the_table():
    import io

    rows = demo(methods=["simclr"], max_epochs=1, out=io.StringIO())
    (row,) = rows
    assert row["method"] == "SimCLRFeaturizer"
    for key in ("probe_accuracy", "random_init_accuracy", "raw_pixel_accuracy"):
        assert 0.1 < row[key] <= 1.0


def test_unknown_method_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--methods", "nope"])
    assert "unknown method" in capsys.readouterr().err


def test_python_dash_m_runs():
    result = subprocess.run(
        [sys.executable, "-m", "skssl", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in result.stdout
