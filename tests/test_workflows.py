"""Real workflows: cached grid searches, deterministic parallel ones, thread limits in
joblib workers, image files as pipeline input, and a grid search on a Dask cluster."""

import json
import os
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skssl import RotNetFeaturizer
from skssl.io import ImageFolderLoader
from skssl.metrics import labeled_scorer
from skssl.semi_supervised import LabeledOnly

from _testing import ONE_EPOCH, TINY

PRETEXT_FITS = []


class CountingRotNet(RotNetFeaturizer):
    """RotNet that logs the rows of every pretext training it runs."""

    def fit(self, X, y=None):
        PRETEXT_FITS.append(len(X))
        return super().fit(X, y)


@pytest.fixture(scope="module")
def digits(digits):
    X, y = digits
    X, y = X[:150], y[:150].copy()
    y[60:] = -1  # 60 labeled rows, 90 unlabeled
    return X, y


def _run_python(code, env=None):
    """Run ``code`` in a fresh interpreter; the last line of its output, as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=os.environ if env is None else env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- Pipeline(memory=...) caching ----------------------------------------------------


@pytest.mark.parametrize("cached", [False, True])
def test_cached_grid_search_fits_the_featurizer_once_per_fold(cached, digits, tmp_path):
    # Measured: 3 folds x 3 values of C give 10 pretext fits without a cache (one
    # per candidate and fold, plus the refit) and 4 with one (one per fold, plus the
    # refit on all rows).
    X, y = digits
    pipe = Pipeline(
        [("featurizer", CountingRotNet(**ONE_EPOCH)), ("classifier", LabeledOnly(LogisticRegression(max_iter=500)))],
        memory=str(tmp_path) if cached else None,
    )
    PRETEXT_FITS.clear()
    GridSearchCV(pipe, {"classifier__estimator__C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    assert PRETEXT_FITS == ([100] * 3 if cached else [100] * 9) + [150]


def test_parameters_hash_the_same_in_another_process():
    featurizers = {
        "name": RotNetFeaturizer(backbone="mlp", backbone_kwargs={"hidden": (32,)}, random_state=0),
        "class": RotNetFeaturizer(backbone=torch.nn.Flatten, image_shape=(8, 8), device="cpu"),
    }
    here = {key: joblib.hash(clone(featurizer)) for key, featurizer in featurizers.items()}
    there = _run_python(
        """
        import json, joblib, torch
        from sklearn.base import clone
        from skssl import RotNetFeaturizer
        featurizers = {
            "name": RotNetFeaturizer(backbone="mlp", backbone_kwargs={"hidden": (32,)}, random_state=0),
            "class": RotNetFeaturizer(backbone=torch.nn.Flatten, image_shape=(8, 8), device="cpu"),
        }
        print(json.dumps({key: joblib.hash(clone(f)) for key, f in featurizers.items()}))
        """
    )
    assert here == there


def test_a_module_instance_backbone_defeats_caching_and_warns(digits):
    X, _ = digits
    featurizer = RotNetFeaturizer(**ONE_EPOCH, backbone=torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3)))
    assert joblib.hash(clone(featurizer)) != joblib.hash(clone(featurizer))  # each clone a new copy
    with pytest.warns(UserWarning, match="backbone is an nn.Module instance.*Pass the module's class"):
        featurizer.fit(X[:32])


def test_grid_search_is_deterministic_across_n_jobs():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X_all, y_all = load_digits(return_X_y=True)
    X_small, y_small = X_all[:120], y_all[:120]
    pipe = make_pipeline(RotNetFeaturizer(**{**TINY, "max_epochs": 1}), LogisticRegression(max_iter=200))
    grid = {"rotnetfeaturizer__max_epochs": [1, 2]}
    results = [GridSearchCV(pipe, grid, cv=2, n_jobs=n_jobs).fit(X_small, y_small) for n_jobs in (1, 2)]
    np.testing.assert_array_equal(*(r.cv_results_["mean_test_score"] for r in results))
    np.testing.assert_array_equal(*(r.best_estimator_[0].transform(X_small) for r in results))
    assert results[0].best_estimator_[0].history_ == [
        {**h, "seconds": results[0].best_estimator_[0].history_[i]["seconds"]}
        for i, h in enumerate(results[1].best_estimator_[0].history_)
    ]


# -- threads in joblib's worker processes ------------------------------------------


def test_workers_of_a_parallel_grid_search_share_the_cores():
    # joblib starts its loky workers with OMP_NUM_THREADS=cores // n_jobs (unless the
    # parent sets it), before torch is imported there, so torch sizes its pool by it.
    # Measured on 2 cores: 1 thread in each of 2 workers, 2 in the parent.
    code = """
    import json, torch
    from joblib import cpu_count
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_validate
    from sklearn.pipeline import make_pipeline
    from skssl import RotNetFeaturizer

    class ThreadSpy(RotNetFeaturizer):
        def fit(self, X, y=None):
            self.threads_ = torch.get_num_threads()
            return super().fit(X, y)

    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(
        ThreadSpy(max_epochs=1, batch_size=32, device="cpu", random_state=0),
        LogisticRegression(max_iter=100),
    )
    result = cross_validate(pipe, X[:120], y[:120], cv=2, n_jobs=2, return_estimator=True)
    print(json.dumps({
        "cores": cpu_count(),
        "parent": torch.get_num_threads(),
        "workers": [fitted[0].threads_ for fitted in result["estimator"]],
    }))
    """
    env = {key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")}
    seen = _run_python(code, env)
    assert seen["workers"] == [max(1, seen["cores"] // 2)] * 2
    if seen["cores"] >= 2:
        assert seen["parent"] > seen["workers"][0]


# -- ImageFolderLoader --------------------------------------------------------------


def _write_pngs(folder, images, prefix="img"):
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{prefix}{index:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def gray_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(20, 10, 12), dtype=np.uint8)
    return images, _write_pngs(tmp_path, images)


def test_loader_reads_the_pixels_in_order(gray_files):
    images, paths = gray_files
    np.testing.assert_array_equal(ImageFolderLoader(mode="L").transform(paths), images)
    rgb = ImageFolderLoader().fit(paths).transform([str(path) for path in paths])
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 10, 12, 3)
    np.testing.assert_array_equal(rgb, np.repeat(images[..., None], 3, axis=3))


def test_loader_resizes_like_pillow(gray_files):
    images, paths = gray_files
    loaded = ImageFolderLoader(size=(6, 5), mode="L").transform(paths)
    expected = np.asarray(Image.fromarray(images[3]).resize((5, 6), Image.Resampling.BILINEAR))
    assert loaded.shape == (20, 6, 5)
    np.testing.assert_array_equal(loaded[3], expected)
    assert ImageFolderLoader(size=7, mode="L").transform(paths).shape == (20, 7, 7)


def test_loader_threads_give_the_same_array(gray_files):
    _, paths = gray_files
    one = ImageFolderLoader(n_jobs=1).transform(paths)
    np.testing.assert_array_equal(ImageFolderLoader(n_jobs=2).transform(paths), one)
    np.testing.assert_array_equal(ImageFolderLoader(n_jobs=-1).transform(paths), one)


def test_loader_takes_columns_arrays_and_a_root(gray_files):
    images, paths = gray_files
    names = [path.name for path in paths]
    loader = ImageFolderLoader(mode="L", root=paths[0].parent)
    for X in (names, np.array(names), np.array(names)[:, None], pd.Series(names), pd.DataFrame({"file": names})):
        np.testing.assert_array_equal(loader.transform(X), images)
    with pytest.raises(ValueError, match="one column of image file paths"):
        loader.transform(pd.DataFrame({"a": names, "b": names}))


def test_loader_errors_name_the_file(tmp_path, gray_files):
    _, paths = gray_files
    with pytest.raises(FileNotFoundError, match="missing.png"):
        ImageFolderLoader().transform([paths[0], tmp_path / "missing.png"])
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="Cannot read .*notes.png"):
        ImageFolderLoader().transform([paths[0], tmp_path / "notes.png"])
    big = _write_pngs(tmp_path, [np.zeros((16, 16), dtype=np.uint8)], prefix="big")
    with pytest.raises(ValueError, match="big000.png' is 16x16 pixels but .* is 12x10; pass size="):
        ImageFolderLoader(n_jobs=2).transform([paths[0], paths[1], big[0]])
    assert ImageFolderLoader(size=(10, 12)).transform([paths[0], big[0]]).shape == (2, 10, 12, 3)
    with pytest.raises(ValueError, match="no paths"):
        ImageFolderLoader().transform([])
    with pytest.raises(TypeError, match="single path"):
        ImageFolderLoader().transform(str(paths[0]))
    with pytest.raises(TypeError, match="must hold file paths"):
        ImageFolderLoader().transform([paths[0], 3])
    with pytest.raises(ValueError, match="size must be"):
        ImageFolderLoader(size=(0, 4)).transform(paths)
    with pytest.raises(ValueError, match="mode"):
        ImageFolderLoader(mode="CMYK").transform(paths)


def test_loader_feeds_a_semi_supervised_pipeline(tmp_path, digits):
    X, y = digits
    images = (X.reshape(-1, 8, 8) * 16).clip(0, 255).astype(np.uint8)
    paths = _write_pngs(tmp_path, images)
    steps = [
        ("featurizer", RotNetFeaturizer(**ONE_EPOCH)),
        ("classifier", LabeledOnly(LogisticRegression(max_iter=1000))),
    ]
    from_files = Pipeline([("load", ImageFolderLoader(mode="L", n_jobs=2)), *steps]).fit(paths, y)
    from_arrays = clone(Pipeline(steps)).fit(images, y)
    np.testing.assert_array_equal(from_files[:-1].transform(paths), from_arrays[:-1].transform(images))
    np.testing.assert_array_equal(from_files.predict(paths), from_arrays.predict(images))
    assert from_files.score(paths, y) == from_arrays.score(images, y)


# -- Dask ---------------------------------------------------------------------------


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster(digits):
    # Measured: the same scores as the local search, and 1 torch thread per worker
    # (Dask's nanny starts workers with OMP_NUM_THREADS=1). ~80 s on 2 busy cores,
    # most of it starting the workers.
    distributed = pytest.importorskip("dask.distributed")
    X, y = digits
    pipe = Pipeline(
        [
            ("featurizer", RotNetFeaturizer(batch_size=32, device="cpu", random_state=0)),
            ("classifier", LabeledOnly(LogisticRegression(max_iter=1000))),
        ]
    )
    search = GridSearchCV(pipe, {"featurizer__max_epochs": [1, 2]}, cv=2, scoring=labeled_scorer())
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        with joblib.parallel_backend("dask"):
            search.fit(X, y)
        worker_threads = client.run(torch.get_num_threads)
    local = clone(search).fit(X, y)
    assert set(worker_threads.values()) == {1}
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"], atol=0.03)
    assert search.best_estimator_[0].n_iter_ == search.best_params_["featurizer__max_epochs"]
