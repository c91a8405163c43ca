"""leanops.models: what a model file is, from its content; skops' trusted-types check; joblib and pickle alike."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from leanops import models

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.2], [0.1, 0.9]])
Y = np.array([0, 1, 1, 0])


def fitted() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


@pytest.mark.parametrize("how", ["pickle", "joblib", "joblib-zlib", "joblib-gzip", "joblib-xz"])
def test_pickles_and_joblib_files_load_whatever_their_name(how: str, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"  # the name says nothing
    est = fitted()
    if how == "pickle":
        path.write_bytes(pickle.dumps(est))
    else:
        compress = {"joblib": 0, "joblib-zlib": ("zlib", 3), "joblib-gzip": ("gzip", 3), "joblib-xz": ("xz", 3)}[how]
        joblib.dump(est, path, compress=compress)
    assert models.sniff(path) == ("pickle" if how in ("pickle", "joblib") else "joblib")
    kind, got = models.load_estimator(path)
    assert kind in ("pickle", "joblib")
    assert got.predict(X).tolist() == est.predict(X).tolist()


def test_the_issue_s_joblib_file_is_what_pickle_load_refused(tmp_path: Path) -> None:
    """joblib.dump writes the arrays after the pickle stream: pickle.load stops on it, joblib.load reads it."""
    path = tmp_path / "model.pkl"
    joblib.dump(fitted(), path)
    with pytest.raises(Exception):  # noqa: B017,PT011 - whatever pickle says
        with open(path, "rb") as fh:
            pickle.load(fh)  # noqa: S301
    assert models.unpickle(path).predict(X).tolist() == fitted().predict(X).tolist()


def test_skops_untrusted_types_are_refused_unless_listed(tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "model.bin"
    est = make_pipeline(FunctionTransformer(np.nan_to_num), LogisticRegression()).fit(X, Y)
    sio.dump(est, path)
    assert models.sniff(path) == "skops"
    with pytest.raises(models.Untrusted) as err:
        models.load_estimator(path)
    assert err.value.types == ["numpy.nan_to_num"]
    with pytest.raises(models.Untrusted):
        models.load_estimator(path, ["numpy.clip"])
    kind, got = models.load_estimator(path, ["numpy.nan_to_num"])
    assert kind == "skops" and got.predict(X).tolist() == est.predict(X).tolist()


def test_a_trusted_skops_file_needs_no_list(tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "m.skops"
    sio.dump(fitted(), path)
    assert models.load_estimator(path)[0] == "skops"


@pytest.mark.parametrize("content, words", [
    (b"\x08\x07\x12\x04onnx", "neither a pickle, a joblib nor a skops file"),
    (b"PK\x03\x04not really a zip", "neither a pickle, a joblib nor a skops file"),
    (b"\x80\x04\x95garbage", "unpack requires"),
    (pickle.dumps({"coef": [1, 2]}), "it holds a builtins.dict, which has no predict()"),
])
def test_what_is_not_a_model_says_why(content: bytes, words: str, tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(content)
    with pytest.raises(models.NotAModel) as err:
        models.load_estimator(path)
    assert words in err.value.reason


def test_a_zip_that_is_not_skops_and_a_directory_without_mlmodel_are_unknown(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("model.txt", "tree")
    assert models.sniff(tmp_path / "a.zip") == "unknown"
    (tmp_path / "d").mkdir()
    assert models.sniff(tmp_path / "d") == "unknown"
    (tmp_path / "d" / "MLmodel").write_text("flavors: {}\n")
    assert models.sniff(tmp_path / "d") == "mlflow"


def _settings(root: Path, path: str) -> object:
    from leanops import config
    from leanops.train_with_cache.settings import Settings

    (root / "leanops.yml").write_text(f"version: 1\nmodel:\n  name: m\n  path: {path}\n")
    return Settings(root=root, target="", model_name="m", model_path=path, experiment="m", params_file="params.yaml",
                    metrics=[], overrides={}, tracking_uri=None, configured_uri=None, push="auto", select_metric="",
                    select_direction="higher", batch="", cfg=config.load(root / "leanops.yml"))


@pytest.mark.parametrize("mlmodel, words", [
    ("flavors:\n  xgboost: {data: model.ubj}\n", "has no python_function flavor (xgboost)"),
    ("flavors:\n  python_function: {loader_module: mlflow.xgboost}\n  xgboost: {}\n", "has no signature"),
    (": [unbalanced\n", "is not readable YAML"),
])
def test_an_mlflow_directory_needs_pyfunc_and_a_signature(mlmodel: str, words: str, tmp_path: Path) -> None:
    from leanops.errors import BadInput
    from leanops.train_with_cache.registry import _load_model

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text(mlmodel)
    with pytest.raises(BadInput) as err:
        _load_model(_settings(tmp_path, "model"))  # type: ignore[arg-type]
    assert words in str(err.value) and "model.path: model" in str(err.value)


def test_a_directory_without_mlmodel_names_the_formats(tmp_path: Path) -> None:
    from leanops.errors import BadInput
    from leanops.train_with_cache.registry import _load_model

    (tmp_path / "model").mkdir()
    with pytest.raises(BadInput) as err:
        _load_model(_settings(tmp_path, "model"))  # type: ignore[arg-type]
    assert "is a directory without an MLmodel file" in str(err.value) and models.FORMATS in str(err.value)
