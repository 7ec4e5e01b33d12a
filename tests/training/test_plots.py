from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from fermion.errors import InvalidInputError
from fermion.training.importance import FeatureImportance
from fermion.training.metrics import classification_metrics
from fermion.training.plots import (
    evaluation_plots,
    plot_calibration,
    plot_confusion_matrix,
    plot_feature_importance,
    plot_precision_recall,
    plot_residuals,
    plot_roc,
)

IMPORTANCE = [FeatureImportance(f"col_{i}", 1 / (i + 1), 0.05) for i in range(25)]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 200
    assert len(data) > 5000


def binary_data(n: int = 400) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    return y, np.column_stack([1 - p1, p1]), ["stays", "churns"]


def multiclass_data(n: int = 600, k: int = 12) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    return y, proba, [f"class {i}" for i in range(k)]


def test_evaluation_plots_write_the_set_for_each_task(tmp_path: Path) -> None:
    y, proba, labels = binary_data()
    binary = evaluation_plots("binary", y, proba, labels, IMPORTANCE, tmp_path / "b" / "c")
    assert [p.name for p in binary] == [
        "roc.png",
        "pr.png",
        "confusion_matrix.png",
        "calibration.png",
        "feature_importance.png",
    ]
    y, proba, labels = multiclass_data()
    multi = evaluation_plots("multiclass", y, proba, labels, None, tmp_path / "m")
    assert "feature_importance.png" not in [p.name for p in multi]
    assert len(multi) == 4
    rng = np.random.default_rng(2)
    truth = rng.normal(size=12_000)
    regression = evaluation_plots(
        "regression", truth, truth + rng.normal(size=12_000), None, IMPORTANCE, tmp_path / "r"
    )
    assert [p.name for p in regression] == ["residuals.png", "feature_importance.png"]
    assert binary[0] == tmp_path / "b" / "c" / "roc.png"
    for path in [*binary, *multi, *regression]:
        assert_png(path)


def test_plots_survive_a_single_class_and_odd_labels(tmp_path: Path) -> None:
    y = np.ones(50, dtype=int)
    p1 = np.linspace(0.01, 0.99, 50)
    proba = np.column_stack([1 - p1, p1])
    labels = ["$0 spend", "spent $$ over $100"]
    assert_png(plot_roc(y, proba, labels, tmp_path / "roc.png"))
    assert_png(plot_precision_recall(1 - y, proba, labels, tmp_path / "pr.png"))
    calibration = classification_metrics(y, proba, labels).calibration
    assert_png(plot_calibration(calibration, tmp_path / "calibration.png"))


def test_plots_can_be_drawn_from_several_threads(tmp_path: Path) -> None:
    y, proba, labels = binary_data()
    confusion = classification_metrics(y, proba, labels).confusion
    errors: list[BaseException] = []

    def draw(i: int) -> None:
        try:
            plot_roc(y, proba, labels, tmp_path / str(i) / "roc.png")
            plot_confusion_matrix(confusion, labels, tmp_path / str(i) / "cm.png")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i in range(3):
        assert_png(tmp_path / str(i) / "roc.png")
        assert_png(tmp_path / str(i) / "cm.png")


def test_bad_plot_input_is_refused(tmp_path: Path) -> None:
    y, proba, labels = binary_data()
    with pytest.raises(InvalidInputError, match="2 x 2"):
        plot_confusion_matrix([[1, 2, 3]], labels, tmp_path / "cm.png")
    with pytest.raises(InvalidInputError, match="no feature importances"):
        plot_feature_importance([], tmp_path / "imp.png")
    with pytest.raises(InvalidInputError, match="top"):
        plot_feature_importance(IMPORTANCE, tmp_path / "imp.png", top=0)
    with pytest.raises(InvalidInputError, match="unknown task"):
        evaluation_plots("ranking", y, proba, labels, None, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="binary task needs 2"):
        evaluation_plots("binary", y, proba, ["a", "b", "c"], None, tmp_path)
    with pytest.raises(InvalidInputError, match="class labels"):
        evaluation_plots("multiclass", y, proba, None, None, tmp_path)
    with pytest.raises(InvalidInputError, match="rows"):
        plot_residuals(np.ones(3), np.ones(4), tmp_path / "res.png")
    assert not list(tmp_path.iterdir())
