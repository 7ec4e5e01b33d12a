"""`train()`: one call tracks, evaluates and registers a model; bad input fails the run cleanly."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from fermion.data.dataset import Dataset
from fermion.entities import RunStatus
from fermion.errors import FermionError, InvalidInputError, MissingDependencyError
from fermion.training.evaluation import evaluate
from fermion.training.trainer import prepare, train
from fermion.workspace import Workspace

AddData = Callable[..., Dataset]
MakeFrame = Callable[..., pl.DataFrame]

# few rounds, trees and epochs keep every training run to a second or two
FAST: dict[str, dict[str, object]] = {
    "random_forest": {"n_estimators": 20},
    "hist_gb": {"max_iter": 30},
    "lightgbm": {"num_boost_round": 30},
    "xgboost": {"num_boost_round": 30},
    "torch_mlp": {"epochs": 5},
}
FEATURE_TYPES = [
    ("age", "integer"),
    ("income", "float"),
    ("city", "categorical"),
    ("member", "boolean"),
    ("start", "datetime"),
]
PLOTS = {"roc", "pr", "confusion_matrix", "calibration", "feature_importance"}


def _artifact_text(ws: Workspace, run_id: int, path: str) -> str:
    for artifact in ws.runs.list_artifacts(run_id):
        if artifact.path == path:
            return ws.storage.artifacts.local_path(artifact.content_hash).read_text("utf-8")
    raise AssertionError(f"run {run_id} has no artifact {path}")


def _test_rows(dataset: Dataset) -> pl.DataFrame:
    return dataset.split_frames(dataset.splits[0])["test"]


def test_train_tracks_evaluates_and_registers(ws: Workspace, add_data: AddData) -> None:
    dataset = add_data(ws, "credit")
    result = train(
        ws, "credit", "status", "lightgbm", {"num_boost_round": 30, "num_leaves": 7}, alias="prod"
    )

    run = ws.runs.get(result.run_id)
    assert run.status == RunStatus.FINISHED
    assert run.params["model"] == "lightgbm"
    assert run.params["task"] == "binary"
    assert run.params["target"] == "status"
    assert run.params["data"] == "credit:1"
    assert run.params["num_boost_round"] == 30 and run.params["num_leaves"] == 7
    assert "learning_rate" in run.params  # the defaults the model used are recorded too
    losses = ws.runs.history(result.run_id, "valid_loss")
    assert [p.step for p in losses] == list(range(1, 31))
    assert losses[-1].value < losses[0].value
    for name in ("roc_auc", "pr_auc", "accuracy", "f1_macro", "log_loss"):
        assert name in run.metrics and f"valid_{name}" in run.metrics
    assert run.metrics["roc_auc"] > 0.75
    assert {k: run.metrics[k] for k in result.metrics} == pytest.approx(result.metrics)

    artifacts = {a.path for a in ws.runs.list_artifacts(result.run_id)}
    assert {f"plots/{name}.png" for name in PLOTS} <= artifacts
    assert {"model_card.md", "evaluation.json"} <= artifacts
    assert set(result.plots) == {f"plots/{name}.png" for name in PLOTS}
    evaluation = json.loads(_artifact_text(ws, result.run_id, "evaluation.json"))
    assert evaluation["metrics"]["accuracy"] == pytest.approx(run.metrics["accuracy"])
    assert ws.runs.inputs(result.run_id) == [(dataset.record.id, "train")]

    # no split was recorded, so one was made, stratified on the target, and trained on
    (split,) = ws.datasets.get("credit").splits
    assert split.params["stratify"] == "status"
    assert run.params["split_id"] == split.id

    version = ws.models.get("credit@prod")
    assert result.model is not None and version.ref == result.model.ref == "credit:1"
    assert version.run_id == result.run_id
    assert "prod" in version.aliases
    assert [(c.name, c.type) for c in version.signature.inputs] == FEATURE_TYPES
    assert version.signature.target == "status"
    assert version.signature.classes == ("bad", "good")
    assert run.tags["model_version"] == "credit:1"

    model = ws.models.load("credit@prod")
    test = _test_rows(ws.datasets.get("credit"))
    predicted = model.predict(test.drop("status").to_dicts())
    accuracy = float(np.mean(predicted == test.get_column("status").to_numpy()))
    assert accuracy == pytest.approx(run.metrics["accuracy"])
    one = model.predict(
        {"age": 30, "income": None, "city": "nice", "member": True, "start": "2021-03-04"}
    )
    assert one.tolist()[0] in ("bad", "good")

    card = _artifact_text(ws, result.run_id, "model_card.md")
    for needle in (
        "`credit:1` (train)",  # the data
        "`num_boost_round`: 30",  # the params
        "roc_auc",  # the metrics
        "plots/roc.png",  # the plots
        f"Trained by run {result.run_id}",  # the lineage
        "| start | datetime |",  # the signature
    ):
        assert needle in card, needle


def test_task_is_detected_from_the_target(sqlite_ws: Workspace, add_data: AddData) -> None:
    add_data(sqlite_ws, "segments", target="segment")
    add_data(sqlite_ws, "amounts", target="amount")
    add_data(sqlite_ws, "defaults", target="defaulted")

    multiclass = prepare(sqlite_ws, "segments", "segment")
    assert multiclass.task == "multiclass"
    assert multiclass.encoding.classes == ("high", "low", "mid")
    assert prepare(sqlite_ws, "amounts", "amount").task == "regression"
    binary = prepare(sqlite_ws, "defaults", "defaulted")
    assert binary.task == "binary" and binary.encoding.classes == (0, 1)
    assert binary.features == ["age", "income", "city", "member", "start"]


def test_regression_on_a_text_target_is_refused(sqlite_ws: Workspace, add_data: AddData) -> None:
    add_data(sqlite_ws, "credit")
    with pytest.raises(InvalidInputError, match="regression needs a numeric target"):
        train(sqlite_ws, "credit", "status", "linear", task="regression")
    (run,) = sqlite_ws.runs.list()
    assert run.status == RunStatus.FAILED
    assert sqlite_ws.models.list() == []


FAMILY_CASES = [
    # (family, target, the task detected from the target)
    ("logistic", "defaulted", "binary"),
    ("linear", "amount", "regression"),
    ("random_forest", "segment", "multiclass"),
    ("hist_gb", "amount", "regression"),
    ("lightgbm", "segment", "multiclass"),
    ("xgboost", "status", "binary"),
    ("torch_mlp", "amount", "regression"),
]


@pytest.mark.parametrize(("family", "target", "task"), FAMILY_CASES)
def test_every_family_trains_registers_and_reloads(
    sqlite_ws: Workspace, add_data: AddData, family: str, target: str, task: str
) -> None:
    add_data(sqlite_ws, "data", n=400, target=target)
    result = train(sqlite_ws, "data", target, family, FAST.get(family, {}), alias="candidate")

    assert result.task == task
    assert result.model is not None
    run = sqlite_ws.runs.get(result.run_id)
    assert run.status == RunStatus.FINISHED and run.params["model"] == family
    headline = "rmse" if task == "regression" else "accuracy"
    assert run.metrics[headline] == result.metrics[headline]
    # the reloaded model scores the test rows exactly as the in-memory one did
    loaded = sqlite_ws.models.load("data@candidate")
    test = _test_rows(sqlite_ws.datasets.get("data"))
    assert evaluate(loaded, test, target).metrics == pytest.approx(result.metrics, rel=1e-9)
    predicted = loaded.predict(test.head(5).drop(target).to_dicts())
    assert len(predicted) == 5
    if task != "regression":
        assert set(predicted.tolist()) <= set(test.get_column(target).unique().to_list())
    scratch = sqlite_ws.scratch_dir  # training leaves no temporary files behind
    assert not scratch.exists() or not any(scratch.iterdir())


def test_the_newest_recorded_split_is_used(sqlite_ws: Workspace, add_data: AddData) -> None:
    add_data(sqlite_ws, "credit", n=400)
    sqlite_ws.datasets.split("credit", train=0.6, valid=0.2, test=0.2, seed=1)
    newest = sqlite_ws.datasets.split("credit", train=0.5, valid=0.25, test=0.25, seed=2)
    result = train(sqlite_ws, "credit", "status", "logistic", register=False)
    run = sqlite_ws.runs.get(result.run_id)
    assert run.params["split_id"] == newest.id
    assert len(sqlite_ws.datasets.get("credit").splits) == 2  # no third split was made
    assert result.model is None and sqlite_ws.models.list() == []


# -- bad input: a clear error, the run failed with it, nothing registered ----------------------


def _unknown_target(
    ws: Workspace, add: AddData, make: MakeFrame, mp: pytest.MonkeyPatch
) -> dict[str, Any]:
    add(ws, "credit", n=100)
    return {"target": "statu"}


def _one_class(
    ws: Workspace, add: AddData, make: MakeFrame, mp: pytest.MonkeyPatch
) -> dict[str, Any]:
    add(ws, "credit", make(n=100).with_columns(status=pl.lit("good")))
    return {}


def _missing_library(
    ws: Workspace, add: AddData, make: MakeFrame, mp: pytest.MonkeyPatch
) -> dict[str, Any]:
    add(ws, "credit", n=100)
    mp.setitem(sys.modules, "lightgbm", None)
    return {}


def _wrong_param_type(
    ws: Workspace, add: AddData, make: MakeFrame, mp: pytest.MonkeyPatch
) -> dict[str, Any]:
    add(ws, "credit", n=100)
    return {"params": {"num_leaves": "abc"}}


def _empty_training_split(
    ws: Workspace, add: AddData, make: MakeFrame, mp: pytest.MonkeyPatch
) -> dict[str, Any]:
    add(ws, "credit", n=100)
    ws.datasets.split("credit", train=0, valid=0.5, test=0.5)
    return {}


def _null_target(
    ws: Workspace, add: AddData, make: MakeFrame, mp: pytest.MonkeyPatch
) -> dict[str, Any]:
    frame = make(n=100)
    status = frame.get_column("status").to_list()
    status[3] = status[50] = None
    add(ws, "credit", frame.with_columns(status=pl.Series(status, dtype=pl.String)))
    return {}


BAD_INPUTS: dict[str, tuple[Callable[..., dict[str, Any]], type[FermionError], str]] = {
    "unknown target": (_unknown_target, InvalidInputError, "unknown target column 'statu'"),
    "one class": (_one_class, InvalidInputError, "single class"),
    "missing library": (_missing_library, MissingDependencyError, "'fermion[lightgbm]'"),
    "wrong param type": (_wrong_param_type, InvalidInputError, "param 'num_leaves' must be"),
    "empty training split": (_empty_training_split, InvalidInputError, "training split"),
    "null target": (_null_target, InvalidInputError, "2 missing values"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_the_run_and_registers_nothing(
    ws: Workspace,
    add_data: AddData,
    make_frame: MakeFrame,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    setup, error, message = BAD_INPUTS[case]
    kwargs = {"target": "status", "model": "lightgbm"}
    kwargs |= setup(ws, add_data, make_frame, monkeypatch)
    with pytest.raises(error) as raised:
        train(ws, "credit", alias="prod", **kwargs)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    (run,) = ws.runs.list()
    assert run.status == RunStatus.FAILED
    assert run.error is not None and message in run.error
    assert ws.models.list() == []
