"""The GPU benchmark runs end to end on the CPU with tiny settings, so that it works the
first time a GPU is at hand."""

import subprocess
import sys
from pathlib import Path

GPU_BENCHMARK = Path(__file__).parents[1] / "benchmarks" / "gpu.py"


def test_gpu_benchmark_prints_a_row_per_config_and_setting():
    configs = "rotnet-small_cnn,finetune-small_cnn,selftrain-small_cnn"
    result = subprocess.run(
        [
            sys.executable,
            str(GPU_BENCHMARK),
            "--device",
            "cpu",
            "--steps",
            "1",
            "--warmup",
            "1",
            "--n-images",
            "64",
            "--batch-size",
            "16",
            "--mnist",
            "",
            "--configs",
            configs,
            "--settings",
            "float32,bfloat16",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "small_cnn" in line]
    assert len(rows) == 6, result.stdout
    assert not any("failed" in row for row in rows), result.stdout
    for row in rows:
        fit, model, ratio = (float(cell.replace(",", "")) for cell in row.split("|")[3:6])
        assert fit > 0 and model > 0 and ratio > 0


RECIPES = Path(__file__).parents[1] / "benchmarks" / "recipes.py"


def test_recipe_table_prints_a_row_per_method_on_digits_and_colour(tmp_path):
    log = tmp_path / "rows.jsonl"
    for data in ([], ["--colour"]):
        result = subprocess.run(
            [sys.executable, str(RECIPES), *data, "--methods", "denoising", "--set", "max_epochs=1"]
            + ["--log", str(log)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "max_epochs=1" in line]
        assert [row.split()[1] for row in rows] == ["denoising"], result.stdout
    assert len(log.read_text().splitlines()) == 2
