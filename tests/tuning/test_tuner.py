"""`tune()` as a user runs it: the study, its trial runs, the report, the registered model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from fermion.entities import RunStatus
from fermion.training.families import get_family
from fermion.tuning.objective import CrossValidation, CVResult
from fermion.tuning.space import load_space
from fermion.tuning.study import trial_facts
from fermion.tuning.tuner import tune
from fermion.workspace import Workspace

StoredStudy = Callable[[Workspace, str], optuna.Study]
PNG = b"\x89PNG\r\n\x1a\n"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def _artifact(ws: Workspace, run_id: int, path: str) -> bytes:
    return ws.runs.artifact_path(run_id, path).read_bytes()


def _studies_and_tables(url: str) -> tuple[list[str], set[str]]:
    """Study names in the database, and the tables of the schema the URL uses."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = list(conn.execute(sa.text("SELECT study_name FROM studies")).scalars())
            if not url.startswith("postgresql"):
                return names, set(sa.inspect(conn).get_table_names())
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            assert schema.startswith("t_")  # the test's own schema, from the URL's search_path
            return names, set(sa.inspect(conn).get_table_names(schema=schema))
    finally:
        engine.dispose()


def _check_trial_runs(ws: Workspace, study: optuna.Study, study_run: int, metric: str) -> None:
    """Every trial is a child run of the study's run, with its params and its CV score."""
    children = {run.id: run for run in ws.runs.list(parent_id=study_run)}
    trials = study.get_trials(deepcopy=False)
    assert sorted(children) == sorted(trial_facts(t)["run_id"] for t in trials)
    for trial in trials:
        run = children[trial_facts(trial)["run_id"]]
        assert run.parent_id == study_run
        assert run.name == f"trial-{trial.number}"
        assert run.params["trial"] == trial.number
        assert {k: run.params[k] for k in trial.params} == pytest.approx(trial.params)
        if trial.state == TrialState.COMPLETE:
            assert run.status == RunStatus.FINISHED
            assert run.metrics[metric] == pytest.approx(trial.value)
            assert run.metrics[f"{metric}_std"] == pytest.approx(
                np.std(trial_facts(trial)["fold_scores"])
            )


def test_tune_searches_reports_and_registers_the_best_model(
    workspace: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
) -> None:
    ws = workspace
    add_credit(ws)
    space = space_file()
    result = tune(ws, "credit", "status", trials=6, folds=3, space=space, alias="best")

    # the study lives in the workspace's metadata database (on PostgreSQL: the test's schema)
    names, tables = _studies_and_tables(ws.settings.resolved_metadata_url)
    assert names == ["credit-status-lightgbm"] == [result.study]
    assert {"studies", "trials", "trial_params", "trial_heartbeats", "runs"} <= tables

    study = stored_study(ws, result.study)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == len(_finished(study)) == 6
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE

    # warm start: the first trial is the family's defaults (a zero penalty at its log range's low)
    searched = load_space(Path(space), "lightgbm", "binary")
    defaults = get_family("lightgbm").default_params("binary")
    first = trials[0]
    assert first.params == {k: v for k, v in searched.defaults().items() if k != "num_boost_round"}
    for key in ("learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction"):
        assert first.params[key] == defaults[key]
    assert first.params["lambda_l1"] == 1e-8

    _check_trial_runs(ws, study, result.run_id, "roc_auc")
    runs = [ws.runs.get(trial_facts(t)["run_id"]) for t in trials]
    assert all(run.params["num_boost_round"] == 30 for run in runs)

    # the report, saved with the study's run
    report = json.loads(_artifact(ws, result.run_id, "tuning/report.json"))
    assert report == json.loads(json.dumps(result.report))
    assert sum(report["trials"].values()) == 6
    assert report["trials"]["complete"] >= 5  # the pruner waits for five complete trials
    best = report["best"]
    assert best["trial"] == study.best_trial.number
    assert best["value"] == pytest.approx(study.best_value) == pytest.approx(result.best_value)
    folds = len(best["fold_scores"])
    assert report["noise_band"] == pytest.approx(np.std(best["fold_scores"]) / np.sqrt(folds))
    assert report["noise_band"] > 0
    assert isinstance(report["advice"], str) and report["advice"]
    assert ws.runs.get(best["run_id"]).parent_id == result.run_id
    plots = {"tuning/optimization_history.png", "tuning/param_importance.png"}
    assert set(result.plots) == plots
    for plot in plots:
        assert _artifact(ws, result.run_id, plot).startswith(PNG)

    # the best params retrained with the CV's rounds, evaluated on test, registered
    assert result.final is not None and result.final.model is not None
    model = ws.models.get("credit@best")
    assert model == result.final.model
    assert model.run_id == result.run_id
    manifest = ws.models.manifest(model)
    assert manifest["params"] == result.best_params
    assert result.best_params["num_boost_round"] == best["rounds"]
    for key, value in best["params"].items():
        assert result.best_params[key] == pytest.approx(value)
    record = ws.runs.get(result.run_id)
    assert record.status == RunStatus.FINISHED
    assert record.params["best.num_boost_round"] == best["rounds"]
    assert record.metrics["cv_roc_auc"] == pytest.approx(best["value"])
    assert result.final.evaluated_on == "test"
    assert record.metrics["roc_auc"] == pytest.approx(result.final.metrics["roc_auc"])
    assert result.final.metrics["roc_auc"] > 0.8


def test_a_regression_study_minimises_rmse(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
) -> None:
    add_credit(sqlite_ws, "amount")
    result = tune(
        sqlite_ws, "credit", "amount", trials=4, folds=3, metric="rmse", space=space_file()
    )

    study = stored_study(sqlite_ws, result.study)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    values = [t.value for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert result.best_value == pytest.approx(min(values))
    assert result.report["best"]["value"] == pytest.approx(min(values))
    assert result.final is not None
    assert result.final.task == "regression"
    assert sqlite_ws.runs.get(result.run_id).metrics["rmse"] == pytest.approx(
        result.final.metrics["rmse"]
    )


def test_parallel_workers_share_one_study(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
) -> None:
    add_credit(sqlite_ws)
    result = tune(sqlite_ws, "credit", "status", trials=6, folds=3, jobs=2, space=space_file())

    study = stored_study(sqlite_ws, result.study)
    trials = study.get_trials(deepcopy=False)
    assert len(_finished(study)) >= 6
    assert len(trials) == len(_finished(study))  # none left running or waiting
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert trials[0].params["learning_rate"] == 0.05  # the warm start ran first
    _check_trial_runs(sqlite_ws, study, result.run_id, "roc_auc")
    assert sqlite_ws.runs.get(result.run_id).params["jobs"] == 2
    assert result.final is not None and result.final.model is not None


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evaluate = CrossValidation.evaluate
    calls = iter(range(100))

    def flaky(self: CrossValidation, params: dict[str, object], reporter: Any = None) -> CVResult:
        if next(calls) == 1:
            raise ValueError("num_leaves=3 is not accepted")
        return evaluate(self, params, reporter)

    monkeypatch.setattr(CrossValidation, "evaluate", flaky)
    add_credit(sqlite_ws)
    result = tune(sqlite_ws, "credit", "status", trials=5, folds=3, space=space_file())

    study = stored_study(sqlite_ws, result.study)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 5
    failed = trials[1]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["error"] == "ValueError: num_leaves=3 is not accepted"
    run = sqlite_ws.runs.get(trial_facts(failed)["run_id"])
    assert run.parent_id == result.run_id
    assert run.status == RunStatus.FAILED
    assert run.error is not None and "num_leaves=3 is not accepted" in run.error
    assert all(t.state != TrialState.FAIL for t in trials if t.number != 1)
    assert result.report["trials"]["fail"] == 1
    assert result.final is not None and result.final.model is not None


def test_patience_stops_a_study_that_does_not_improve(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def flat(self: CrossValidation, params: dict[str, object], reporter: Any = None) -> CVResult:
        return CVResult(mean=0.8, std=0.0, fold_scores=[0.8, 0.8, 0.8])

    monkeypatch.setattr(CrossValidation, "evaluate", flat)
    add_credit(sqlite_ws)
    result = tune(sqlite_ws, "credit", "status", trials=8, folds=3, patience=2, space=space_file())

    study = stored_study(sqlite_ws, result.study)
    assert len(_finished(study)) == 3  # the first trial, then two without a gain
    assert result.report["trials"] == {"complete": 3, "pruned": 0, "fail": 0}
    assert result.report["trials_since_improvement"] == 2
    assert result.final is not None and result.final.model is not None
