import io
import os
import subprocess
import sys
from pathlib import Path

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


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for command in ("fit", "predict", "embed", "evaluate", "methods", "demo"):
        assert f"skssl {command}" in out


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
    assert lines[0].split()[:5] == ["name", "estimator", "backbone", "layer", "epochs"]
    assert [line.split()[0] for line in lines[1:]] == list(METHODS)
    rotnet = next(line for line in lines if line.startswith("rotnet "))
    assert rotnet.split()[1:5] == ["RotNetFeaturizer", "wide_cnn", "conv2", "30"] and "ICLR 2018" in rotnet


# --- fit, predict, embed, evaluate -------------------------------------------------------

CLASSES = ("cats", "dogs")  # class subfolders; four more images sit unlabeled in the root
PER_CLASS, UNLABELED = 10, 4
# tiny, seeded CPU training through --set, as _testing.ONE_EPOCH
SETTINGS = ["--set", "max_epochs=1", "--set", "batch_size=16", "--set", "device=cpu", "--set", "random_state=0"]
CLASSIFIER_SETTINGS = ["--set", "classifier.max_epochs=1", "--set", "classifier.semi_supervised_epochs=1"]


def _save_png(path, pixels):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """8x8 RGB PNGs: dark ``cats/``, bright ``dogs/`` and unlabeled noise in the root."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label, level in zip(CLASSES, (50, 200)):
        for i in range(PER_CLASS):
            _save_png(root / label / f"{i:02d}.png", np.clip(rng.normal(level, 30, (8, 8, 3)), 0, 255).astype(np.uint8))
    for i in range(UNLABELED):
        _save_png(root / f"unlabeled{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def paths(folder):
    from skssl.io import ImageFolderLoader

    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    return names, ImageFolderLoader(root=folder).transform(names)


@pytest.fixture(scope="module")
def featurizer_file(folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "rotnet.pt"
    assert main(["fit", "rotnet", str(folder), "-o", str(path), *SETTINGS, "--quiet"]) == 0
    return path


@pytest.fixture(scope="module")
def classifier_file(folder, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "classifier.pt"
    argv = ["fit", "rotnet", str(folder), "-o", str(path), "--labels", "folders", *SETTINGS, *CLASSIFIER_SETTINGS]
    assert main([*argv, "--quiet"]) == 0
    return path


def _error(capsys, argv):
    """Run ``argv``; check it fails with one line on stderr and no traceback; return the line."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("skssl: error: ")
    return line


def test_fit_saves_the_method_with_the_set_parameters(featurizer_file):
    from skssl import RotNetFeaturizer, load

    model = load(featurizer_file)
    assert type(model) is RotNetFeaturizer
    assert model.image_shape_ == (3, 8, 8)
    assert (model.max_epochs, model.batch_size, model.device, model.verbose) == (1, 16, "cpu", 0)  # 0: --quiet


def test_embed_npy_streams_the_features_of_every_image_with_their_paths(
    featurizer_file, folder, paths, tmp_path, monkeypatch
):
    from skssl import load
    from skssl.io import ImageFolderLoader

    names, images = paths
    out = tmp_path / "features.npy"
    read, transform = [], ImageFolderLoader.transform
    monkeypatch.setattr(ImageFolderLoader, "transform", lambda self, X: read.append(len(X)) or transform(self, X))
    assert main(["embed", str(featurizer_file), str(folder), "-o", str(out), "--chunk-size", "5", "--quiet"]) == 0
    assert read == [5, 5, 5, 5, 4]  # a chunk of images at a time
    features = np.load(out)
    expected = load(featurizer_file).transform(images)
    assert features.shape == expected.shape == (len(names), expected.shape[1])
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "features.paths.txt").read_text().splitlines() == names
    assert len(names) == len(CLASSES) * PER_CLASS + UNLABELED


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_embed_csv_and_parquet_hold_the_same_features_indexed_by_path(featurizer_file, folder, paths, tmp_path, suffix):
    pd = pytest.importorskip("pandas")
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    npy, out = tmp_path / "features.npy", tmp_path / f"features{suffix}"
    for path in (npy, out):
        assert main(["embed", str(featurizer_file), str(folder), "-o", str(path), "--chunk-size", "7", "--quiet"]) == 0
    table = pd.read_csv(out, index_col=0) if suffix == ".csv" else pd.read_parquet(out)
    assert table.index.name == "path" and table.index.tolist() == paths[0]
    np.testing.assert_array_equal(table.to_numpy(np.float32), np.load(npy))  # the CSV's digits read back exactly
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["features.npy", "features.paths.txt", out.name])


def test_parquet_without_pandas_has_the_paths_as_first_column(featurizer_file, folder, paths, tmp_path, monkeypatch):
    from skssl import load

    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setitem(sys.modules, "pandas", None)
    out = tmp_path / "features.parquet"
    assert main(["embed", str(featurizer_file), str(folder), "-o", str(out), "--chunk-size", "7", "--quiet"]) == 0
    table = pq.read_table(out)
    assert table.column_names[0] == "path" and table.column("path").to_pylist() == paths[0]
    assert table.column_names[1:] == load(featurizer_file).get_feature_names_out().tolist()


def test_evaluate_prints_the_probes_on_a_split_of_the_labeled_images(featurizer_file, folder, capsys):
    argv = ["evaluate", str(featurizer_file), str(folder), "--labels", "folders", "--test-size", "0.3", "--quiet"]
    assert main(argv) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["method", "n", "train", "n", "test", "linear", "acc", "kNN", "acc"]
    method, n_train, n_test, linear, knn = row.split()
    assert method == "RotNetFeaturizer"
    assert (int(n_train), int(n_test)) == (14, 6)  # the 20 labeled images; the unlabeled ones left out
    assert 0 <= float(linear) <= 1 and 0 <= float(knn) <= 1


def test_a_classifier_fitted_on_class_folders_predicts_their_names(classifier_file, folder, paths, tmp_path):
    pd = pytest.importorskip("pandas")
    from skssl import FineTunedClassifier, load

    model = load(classifier_file)
    assert type(model) is FineTunedClassifier and model.max_epochs == 1 and model.featurizer.max_epochs == 1
    assert model.classes_.tolist() == list(CLASSES) and model.n_labeled_ == len(CLASSES) * PER_CLASS
    names, images = paths
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(classifier_file), str(folder), "-o", str(out), "--chunk-size", "6", "--quiet"]) == 0
    table = pd.read_csv(out)
    assert table.columns.tolist() == ["path", "prediction"] and table["path"].tolist() == names
    assert table["prediction"].tolist() == model.predict(images).tolist()
    assert set(table["prediction"]) <= set(CLASSES)
    npy = tmp_path / "predictions.npy"
    assert main(["predict", str(classifier_file), str(folder), "-o", str(npy), "--quiet"]) == 0
    assert np.load(npy).tolist() == table["prediction"].tolist()  # a string array: loads without pickle
    assert (tmp_path / "predictions.paths.txt").read_text().splitlines() == names


def test_a_labels_file_names_the_labeled_images_the_rest_are_unlabeled(folder, paths, tmp_path, capsys):
    from skssl import load

    names = paths[0]
    labels = tmp_path / "labels.csv"
    rows = [f"{name},{'dark' if name.startswith('cats') else 'bright'}" for name in names if "/" in name]
    rows[0] = rows[0].split(",")[0] + ","  # an empty label: unlabeled
    labels.write_text("path,label\n" + "\n".join(rows) + f"\n{names[-1]},-1\n")
    model_path = tmp_path / "model.pt"
    argv = ["fit", "rotnet", str(folder), "-o", str(model_path), "--labels", str(labels), *SETTINGS]
    assert main([*argv, *CLASSIFIER_SETTINGS, "--set", "classifier.semi_supervised=None"]) == 0
    model = load(model_path)
    assert model.classes_.tolist() == ["bright", "dark"] and model.n_labeled_ == len(CLASSES) * PER_CLASS - 1
    assert model.semi_supervised is None
    assert "saved a FineTunedClassifier(RotNetFeaturizer) fitted on 24 images" in capsys.readouterr().err


def test_arrays_npy_and_npz_embed_and_evaluate_like_the_folder(featurizer_file, paths, tmp_path, capsys):
    from skssl import load

    names, images = paths
    labeled = np.array(["/" in name for name in names])
    y = np.where(labeled, [name.startswith("dogs") for name in names], -1)
    np.save(tmp_path / "images.npy", images)
    np.savez(tmp_path / "images.npz", X=images, y=y)
    (tmp_path / "labels.csv").write_text("label\n" + "\n".join(map(str, y)) + "\n")
    for data in ("images.npy", "images.npz"):
        out = tmp_path / f"{data}.csv"
        assert main(["embed", str(featurizer_file), str(tmp_path / data), "-o", str(out), "--quiet"]) == 0
        lines = out.read_text().splitlines()
        assert lines[0].startswith("index,") and [line.split(",")[0] for line in lines[1:]] == list(map(str, range(24)))
        features = np.loadtxt(out, delimiter=",", skiprows=1, dtype=np.float32)[:, 1:]
        np.testing.assert_allclose(features, load(featurizer_file).transform(images), rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.glob("*.paths.txt"))  # an array's rows are named by their index
    for data, labels in [("images.npy", "labels.csv"), ("images.npz", "images.npz")]:
        argv = ["evaluate", str(featurizer_file), str(tmp_path / data), "--labels", str(tmp_path / labels), "--quiet"]
        assert main(argv) == 0
        assert capsys.readouterr().out.splitlines()[1].split()[1:3] == ["16", "4"]


def test_fit_on_an_npy_streams_its_memmap_and_reads_one_label_a_line(paths, tmp_path, monkeypatch):
    from skssl import FineTunedClassifier, load

    names, images = paths
    np.save(tmp_path / "images.npy", images)
    # integer classes; a blank line and -1 are unlabeled
    lines = [
        "" if i == 0 else "-1" if "/" not in name else str(int(name.startswith("dogs"))) for i, name in enumerate(names)
    ]
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")
    seen, fit = [], FineTunedClassifier.fit
    monkeypatch.setattr(FineTunedClassifier, "fit", lambda self, X, y: seen.append(type(X)) or fit(self, X, y))
    model = tmp_path / "model.pt"
    argv = ["fit", "rotnet", str(tmp_path / "images.npy"), "-o", str(model), "--labels", str(tmp_path / "labels.txt")]
    assert main([*argv, *SETTINGS, *CLASSIFIER_SETTINGS, "--quiet"]) == 0
    assert seen == [np.memmap]  # not copied into memory: fit reads a batch at a time from it
    classifier = load(model)
    assert classifier.classes_.tolist() == [0, 1] and classifier.n_labeled_ == len(CLASSES) * PER_CLASS - 1


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_a_folder_of_mnist_idx_files_is_read_as_mnist(tmp_path, capsys):
    from skssl import load

    rng = np.random.default_rng(0)
    y = np.arange(24) % 2
    X = np.where(y[:, None, None] == 1, 220, 30) + rng.integers(0, 30, (24, 8, 8))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", X)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", y)
    model = tmp_path / "mnist.pt"
    assert main(["fit", "rotnet", str(tmp_path), "-o", str(model), *SETTINGS, "--quiet"]) == 0
    assert load(model).image_shape_ == (1, 8, 8)
    labels = str(tmp_path / "t10k-labels-idx1-ubyte")
    assert main(["evaluate", str(model), str(tmp_path), "--labels", labels, "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1:3] == ["19", "5"]


def test_images_of_different_sizes_need_size_which_resizes_them(tmp_path, capsys):
    from skssl import load

    for i in range(12):
        _save_png(tmp_path / "images" / f"{i:02d}.png", np.full((8 + 4 * (i % 2), 8, 3), 20 * i, np.uint8))
    model = tmp_path / "model.pt"
    argv = ["fit", "rotnet", str(tmp_path / "images"), "-o", str(model), *SETTINGS, "--set", "batch_size=12", "--quiet"]
    line = _error(capsys, argv)
    assert "01.png' is 8x12 pixels but" in line and "pass --size HEIGHT,WIDTH" in line
    assert not model.exists()
    assert main([*argv, "--size", "8", "--mode", "L"]) == 0
    assert load(model).image_shape_ == (1, 8, 8)


def test_set_values_are_read_as_python_literals_or_words():
    from skssl.cli import parse_setting

    assert parse_setting("max_epochs=3") == ("max_epochs", 3)
    assert parse_setting(" learning_rate = 1e-3") == ("learning_rate", 1e-3)
    assert parse_setting("crop_scale=(0.2, 1.0)") == ("crop_scale", (0.2, 1.0))
    assert parse_setting("image_shape=8,8") == ("image_shape", (8, 8))
    assert parse_setting("random_state=None") == ("random_state", None)
    assert parse_setting("compile=False") == ("compile", False)
    assert parse_setting("backbone_kwargs={'widths': (8, 16)}") == ("backbone_kwargs", {"widths": (8, 16)})
    assert parse_setting("layer=conv2") == ("layer", "conv2")
    assert parse_setting("device=cuda:0") == ("device", "cuda:0")
    assert parse_setting("checkpoint_dir=a=b") == ("checkpoint_dir", "a=b")


def test_errors_are_one_line_and_leave_no_file(featurizer_file, classifier_file, folder, paths, tmp_path, capsys):
    out, missing = str(tmp_path / "out.npy"), str(tmp_path / "missing")
    model, data = str(featurizer_file), str(folder)
    cases = {
        ("fit", "rotnet", missing, "-o", out): f"DATA {missing} does not exist",
        ("fit", "rotnet", data, "-o", out, "--set", "max_epochs=-1"): "'max_epochs' parameter of RotNetFeaturizer",
        ("fit", "rotnet", data, "-o", out, "--set", "epochs=3"): "Invalid parameter 'epochs' for estimator",
        ("fit", "rotnet", data, "-o", out, "--set", "classifier.max_epochs=1"): "without --labels there is none",
        ("fit", "rotnet", data, "-o", out, "--labels", "folders", "--set", "classifier.tol=x"): "'tol' parameter",
        ("fit", "rotnet", data, "-o", data): "is a folder",
        ("fit", "rotnet", str(featurizer_file), "-o", out): "neither a folder",
        ("predict", str(tmp_path / "missing.pt"), data, "-o", str(tmp_path / "p.csv")): "there is no such file",
        ("predict", str(folder / "cats" / "00.png"), data, "-o", str(tmp_path / "p.csv")): "not an estimator saved",
        ("predict", model, data, "-o", str(tmp_path / "p.csv")): "RotNetFeaturizer, which embeds images but does not",
        ("predict", str(classifier_file), data, "-o", str(tmp_path / "p.txt")): "must end in .csv or .npy",
        ("embed", model, data, "-o", str(tmp_path / "f.json")): "must end in .npy, .csv or .parquet",
        ("evaluate", model, data, "--labels", str(tmp_path / "none.csv")): "neither the word 'folders' nor",
        ("evaluate", model, data, "--labels", str(featurizer_file)): "expected 'folders', a .csv",
    }
    for argv, expected in cases.items():
        assert expected in _error(capsys, list(argv)), argv
    labels = tmp_path / "labels.csv"
    evaluate = ["evaluate", model, data, "--labels", str(labels)]
    labels.write_text("path,label\ncats/00.png,a\nnot/there.png,b\n")
    assert "1 path(s) that are not images under DATA, e.g. 'not/there.png'" in _error(capsys, evaluate)
    labels.write_text("a\nb\n")
    assert f"holds 2 labels but DATA has {len(paths[0])} images" in _error(capsys, evaluate)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["fit", "nope", "data", "-o", "m.pt"], "invalid choice: 'nope'"),
        (["fit", "rotnet", "data", "-o", "m.pt", "--set", "max_epochs"], "expected NAME=VALUE"),
        (["embed", "m.pt", "data", "-o", "f.npy", "--size", "8,0"], "expected N or HEIGHT,WIDTH"),
        (["predict", "m.pt", "data"], "required: -o/--output"),
    ],
)
def test_usage_errors_are_argparse_errors(argv, expected, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert expected in capsys.readouterr().err


def test_parquet_without_pyarrow_is_one_line_before_any_work(featurizer_file, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setattr("skssl._cli_commands.load", lambda path: pytest.fail("loaded the model"))
    line = _error(capsys, ["embed", str(featurizer_file), str(folder), "-o", str(tmp_path / "f.parquet")])
    assert "Writing .parquet needs pyarrow: pip install pyarrow" in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_a_failure_midway_keeps_the_old_file_and_leaves_no_partial_file(featurizer_file, folder, tmp_path, suffix):
    import shutil

    broken = tmp_path / "images"
    shutil.copytree(folder, broken)
    (broken / "zz_broken.png").write_bytes(b"not an image")  # sorted last: read in the last chunk
    out = tmp_path / f"features{suffix}"
    out.write_text("the old file")
    assert main(["embed", str(featurizer_file), str(broken), "-o", str(out), "--chunk-size", "4", "--quiet"]) == 1
    assert out.read_text() == "the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features" + suffix, "images"]


def test_ctrl_c_is_a_short_message_and_status_130(featurizer_file, folder, tmp_path, capsys, monkeypatch):
    from skssl.io import ImageFolderLoader

    def interrupted(self, X):
        raise KeyboardInterrupt

    monkeypatch.setattr(ImageFolderLoader, "transform", interrupted)
    assert main(["embed", str(featurizer_file), str(folder), "-o", str(tmp_path / "f.npy")]) == 130
    assert capsys.readouterr().err.strip() == "skssl: interrupted"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["fit", "predict", "embed", "evaluate", "methods", "demo"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main([command, "--help"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: skssl {command}")


def _this_tree():
    """The environment for a ``python -m skssl`` that imports this checkout's skssl."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def test_python_dash_m_exits_with_the_error_status_and_one_line(featurizer_file, folder, tmp_path):
    """The one run through ``python -m skssl``: the exit status reaches the shell."""
    argv = ["predict", str(featurizer_file), str(folder), "-o", str(tmp_path / "p.csv")]
    result = subprocess.run([sys.executable, "-m", "skssl", *argv], capture_output=True, text=True, env=_this_tree())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"skssl: error: MODEL {featurizer_file} holds a RotNetFeaturizer, which embeds images but does not predict; "
        f"fit a classifier with skssl fit METHOD DATA --labels ... -o MODEL."
    ]


def test_a_reader_that_leaves_early_gets_no_error_message():
    """``skssl methods | head -1``: the pipe closes before skssl writes; no traceback, no error."""
    child = subprocess.Popen(
        [sys.executable, "-m", "skssl", "methods"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_this_tree()
    )
    child.stdout.close()  # before the child has imported skssl, so its first write meets a closed pipe
    stderr = child.stderr.read().decode()
    assert child.wait() == 141
    assert stderr == ""
