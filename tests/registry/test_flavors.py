"""Flavors: every fitted model survives a save and load with identical predictions."""

from __future__ import annotations

import fractions
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import make_classification, make_regression

from fermion.errors import ConflictError, InvalidInputError
from fermion.registry.flavors import FLAVORS, flavor_for, get_flavor
from fermion.registry.flavors.python_flavor import PythonFlavor, load_object, save_object
from fermion.registry.flavors.sklearn_flavor import SklearnFlavor
from fermion.training.families import get_family
from fermion.training.families.base import FittedModel, Task
from fermion.training.families.sklearn_models import SklearnModel

FAST: dict[str, dict[str, object]] = {
    "random_forest": {"n_estimators": 20},
    "hist_gb": {"max_iter": 30},
    "lightgbm": {"num_boost_round": 40},
    "xgboost": {"num_boost_round": 40},
    "torch_mlp": {"epochs": 5},
}
CASES = [
    ("logistic", "binary"),
    ("logistic", "multiclass"),
    ("linear", "regression"),
    ("random_forest", "multiclass"),
    ("hist_gb", "binary"),
    ("hist_gb", "regression"),
    ("lightgbm", "binary"),
    ("lightgbm", "multiclass"),
    ("lightgbm", "regression"),
    ("xgboost", "binary"),
    ("xgboost", "multiclass"),
    ("xgboost", "regression"),
    ("torch_mlp", "multiclass"),
    ("torch_mlp", "regression"),
]


def _data(task: Task) -> tuple[npt.NDArray[Any], npt.NDArray[Any], int]:
    if task == "regression":
        X, y = make_regression(n_samples=300, n_features=6, noise=5.0, random_state=1)
        return X.astype(np.float32), y, 0
    k = 2 if task == "binary" else 3
    X, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=k, random_state=1
    )
    return X.astype(np.float32), y, k


def _fit(name: str, task: Task) -> tuple[FittedModel, npt.NDArray[Any]]:
    X, y, k = _data(task)
    categorical: list[int] = []
    if get_family(name).preprocessing == "trees":
        X[:, 0] = np.floor(np.abs(X[:, 0]) * 2)  # ordinal codes, as the preprocessor makes them
        X[::9, 1] = np.nan
        categorical = [0]
    model = get_family(name).fit(
        X[:200],
        y[:200],
        task=task,
        n_classes=k,
        params=FAST.get(name, {}),
        valid=(X[200:250], y[200:250]),
        categorical_features=categorical,
    )
    return model, X[250:]


def _assert_same_predictions(a: FittedModel, b: FittedModel, X: npt.NDArray[Any]) -> None:
    if a.task == "regression":
        np.testing.assert_allclose(b.predict(X), a.predict(X), rtol=0, atol=1e-6)
    else:
        np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(b.predict(X), a.predict(X))


@pytest.mark.parametrize(("name", "task"), CASES)
def test_round_trip_keeps_predictions(name: str, task: Task, tmp_path: Path) -> None:
    model, X = _fit(name, task)
    flavor = flavor_for(model)
    assert flavor.name == get_family(name).flavor
    assert not flavor.pickle_based
    meta = json.loads(json.dumps(flavor.save(model, tmp_path / "model")))
    assert meta["flavor"] == flavor.name and meta["task"] == task
    loaded = flavor.load(tmp_path / "model", meta, trusted=False)
    assert type(loaded) is type(model)
    assert (loaded.task, loaded.n_classes, loaded.best_step) == (
        model.task,
        model.n_classes,
        model.best_step,
    )
    _assert_same_predictions(model, loaded, X)


def test_python_flavor_needs_trust(tmp_path: Path) -> None:
    model, X = _fit("lightgbm", "binary")
    flavor = get_flavor("python")
    assert flavor.pickle_based
    meta = json.loads(json.dumps(flavor.save(model, tmp_path)))
    with pytest.raises(ConflictError, match="trusted=True"):
        flavor.load(tmp_path, meta, trusted=False)
    _assert_same_predictions(model, flavor.load(tmp_path, meta, trusted=True), X)


def test_python_objects_round_trip_by_value(tmp_path: Path) -> None:
    offset = 3

    def predict(x: int) -> int:
        return x + offset

    meta = save_object(predict, tmp_path)
    with pytest.raises(ConflictError):
        load_object(tmp_path, meta, trusted=False)
    loaded = load_object(tmp_path, meta, trusted=True)
    assert callable(loaded) and loaded(1) == 4


def test_python_flavor_refuses_an_object_that_is_not_a_model(tmp_path: Path) -> None:
    meta = save_object({"not": "a model"}, tmp_path)
    with pytest.raises(InvalidInputError, match="not a fitted model"):
        PythonFlavor().load(tmp_path, meta, trusted=True)


def test_sklearn_flavor_refuses_foreign_types_unless_trusted(tmp_path: Path) -> None:
    model, X = _fit("logistic", "binary")
    model.estimator.note_ = fractions.Fraction(1, 3)
    meta = SklearnFlavor().save(model, tmp_path)
    with pytest.raises(ConflictError, match=r"fractions\.Fraction"):
        SklearnFlavor().load(tmp_path, meta, trusted=False)
    loaded = SklearnFlavor().load(tmp_path, meta, trusted=True)
    assert loaded.estimator.note_ == fractions.Fraction(1, 3)
    _assert_same_predictions(model, loaded, X)


def test_a_flavor_refuses_another_librarys_model(tmp_path: Path) -> None:
    model, _ = _fit("lightgbm", "regression")
    with pytest.raises(InvalidInputError, match="saves SklearnModel"):
        SklearnFlavor().save(model, tmp_path)


def test_malformed_metadata_is_refused(tmp_path: Path) -> None:
    model, _ = _fit("linear", "regression")
    assert isinstance(model, SklearnModel)
    meta = SklearnFlavor().save(model, tmp_path)
    with pytest.raises(InvalidInputError, match="unknown task"):
        SklearnFlavor().load(tmp_path, {**meta, "task": "ranking"}, trusted=False)


def test_unknown_flavor_names_the_choices() -> None:
    assert set(FLAVORS) == {
        "sklearn",
        "lightgbm",
        "xgboost",
        "torch",
        "torch_export",
        "python",
        "sentence_transformers",
        "onnx",
    }
    with pytest.raises(InvalidInputError, match="unknown model flavor 'tflite'; choose one of"):
        get_flavor("tflite")


def test_loading_a_scikit_learn_model_imports_only_what_it_needs(tmp_path: Path) -> None:
    """skops lists its trusted types by importing every scikit-learn package (torch's
    array-API adapter among them); a served scikit-learn model pays for neither, and a file
    holding a type outside scikit-learn and numpy is still refused, in a fresh process."""
    import subprocess
    import sys

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    model = get_family("logistic").fit(X, y, task="binary", n_classes=2, params={}, seed=0)
    meta = SklearnFlavor().save(model, tmp_path / "model")
    (tmp_path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert isinstance(model, SklearnModel)
    model.estimator.note_ = fractions.Fraction(1, 3)
    SklearnFlavor().save(model, tmp_path / "foreign")
    script = (
        "import json, sys\n"
        "import sklearn.utils\n"
        "from pathlib import Path\n"
        "from fermion.errors import ConflictError\n"
        "from fermion.registry.flavors.sklearn_flavor import SklearnFlavor\n"
        "walk = sklearn.utils.all_estimators\n"
        f"folder = Path({str(tmp_path)!r})\n"
        "meta = json.loads((folder / 'meta.json').read_text())\n"
        "model = SklearnFlavor().load(folder / 'model', meta, trusted=False)\n"
        "print(model.predict_proba([[0.1, 0.2, 0.3, 0.4]]).shape, 'torch' in sys.modules)\n"
        "print('sklearn.semi_supervised' in sys.modules, sklearn.utils.all_estimators is walk)\n"
        "try:\n"
        "    SklearnFlavor().load(folder / 'foreign', meta, trusted=False)\n"
        "except ConflictError as exc:\n"
        "    print('refused' if 'fractions.Fraction' in str(exc) else exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["(1,", "2)", "False", "False", "True", "refused"]


@pytest.mark.parametrize(("name", "task"), [("logistic", "binary"), ("linear", "regression")])
def test_a_trusted_linear_model_loads_its_weights_without_scikit_learn(
    name: str, task: Task, tmp_path: Path
) -> None:
    import subprocess
    import sys

    model, X = _fit(name, task)
    meta = SklearnFlavor().save(model, tmp_path)
    assert meta["linear_file"] == "linear.npz"
    np.save(tmp_path / "rows.npy", X[:20])
    script = """
import json, sys
from pathlib import Path
import numpy as np
from fermion.registry.flavors.sklearn_flavor import SklearnFlavor
folder = Path(sys.argv[1])
model = SklearnFlavor().load(folder, json.loads(sys.argv[2]), trusted=True)
rows = np.load(folder / "rows.npy")
out = model.predict_proba(rows) if model.task != "regression" else model.predict(rows)
assert "sklearn" not in sys.modules and "scipy" not in sys.modules, "scikit-learn was imported"
np.save(folder / "out.npy", out)
print(type(model.estimator).__name__)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), json.dumps(meta)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("LogisticRegression", "Ridge")  # loaded on first use
    expected = model.predict_proba(X[:20]) if task != "regression" else model.predict(X[:20])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-12)


def test_an_untrusted_linear_model_is_checked_by_skops_as_before(tmp_path: Path) -> None:
    model, X = _fit("logistic", "binary")
    meta = SklearnFlavor().save(model, tmp_path)
    loaded = SklearnFlavor().load(tmp_path, meta, trusted=False)
    assert type(loaded.estimator).__name__ == "LogisticRegression"
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-12)


def test_an_exported_torch_program_loads_from_several_threads_at_once(tmp_path: Path) -> None:
    """torch.export.load keeps global state while it reads; two pipeline steps load the same
    model side by side."""
    import threading

    torch = pytest.importorskip("torch")
    from fermion.registry.flavors.torch_export_flavor import ExportedTorchModel, TorchExportFlavor

    program = torch.export.export(torch.nn.Linear(4, 2).eval(), (torch.zeros(3, 4),))
    model = ExportedTorchModel(program, task="binary", n_classes=2, n_features=4)
    meta = TorchExportFlavor().save(model, tmp_path)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            TorchExportFlavor().load(tmp_path, meta, trusted=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
