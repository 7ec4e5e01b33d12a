"""Studies in the metadata database: resuming, refusing a changed study, starting over,
and retrying the trial of a worker that died."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from fermion.entities import RunStatus
from fermion.errors import ConflictError
from fermion.tuning.space import load_space
from fermion.tuning.study import SETUP_ATTR, close_storage, open_storage, quiet_optuna, trial_facts
from fermion.tuning.tuner import tune
from fermion.workspace import Workspace

StoredStudy = Callable[[Workspace, str], optuna.Study]
STUDY = "credit-status-lightgbm"


def _trial_runs(ws: Workspace, study_run: int) -> list[str]:
    return sorted(run.name for run in ws.runs.list(parent_id=study_run))


def test_the_same_call_resumes_the_study_and_a_changed_one_is_refused(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
) -> None:
    ws = sqlite_ws
    add_credit(ws)
    space = space_file()
    first = tune(ws, "credit", "status", trials=4, folds=3, space=space, pruner="none")
    second = tune(ws, "credit", "status", trials=6, folds=3, space=space, pruner="none")

    study = stored_study(ws, STUDY)
    assert second.study == first.study == STUDY
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 6
    assert second.report["trials"]["complete"] == 6
    assert _trial_runs(ws, first.run_id) == [f"trial-{n}" for n in range(4)]
    assert _trial_runs(ws, second.run_id) == ["trial-4", "trial-5"]  # only the two missing

    runs_before = len(ws.runs.list())
    other_space = space_file("params:\n  num_boost_round: 20\n", name="other.yaml")
    changes = [
        ({"space": other_space}, "space="),
        ({"metric": "pr_auc"}, "metric='roc_auc' (now 'pr_auc')"),
        ({"folds": 4}, "folds=3 (now 4)"),
    ]
    for change, named in changes:
        call = {"trials": 8, "folds": 3, "space": space, "pruner": "none"} | change
        with pytest.raises(ConflictError, match=r"--new") as refused:
            tune(ws, "credit", "status", **call)
        assert named in str(refused.value)
        assert STUDY in str(refused.value)
    assert len(ws.runs.list()) == runs_before  # nothing ran
    assert len(stored_study(ws, STUDY).trials) == 6

    # `new` starts the study over, for the new key; the defaults are again its first trial
    fresh = tune(ws, "credit", "status", trials=3, folds=4, space=space, pruner="none", new=True)
    restarted = stored_study(ws, STUDY)
    assert len(restarted.trials) == 3
    assert restarted.trials[0].params == study.trials[0].params
    assert restarted.user_attrs["fermion"]["folds"] == 4
    assert _trial_runs(ws, fresh.run_id) == ["trial-0", "trial-1", "trial-2"]


def test_the_trial_of_a_dead_worker_fails_and_its_params_are_retried_once(
    workspace: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
) -> None:
    ws = workspace
    add_credit(ws)
    space = space_file()
    first = tune(ws, "credit", "status", trials=2, folds=3, space=space, pruner="none")
    study_run = ws.runs.get(first.run_id)

    # a worker asks for a trial, samples its params, starts its run, beats, then dies (SIGKILL)
    url = ws.settings.resolved_metadata_url
    storage = open_storage(url)
    try:
        with quiet_optuna(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            study = optuna.load_study(study_name=STUDY, storage=storage)
            dead = study.ask()
            load_space(Path(space), "lightgbm", "binary").suggest(dead)
            dead_run = ws.runs.store.create_run(
                study_run.experiment, f"trial-{dead.number}", parent_id=study_run.id
            )
            dead.set_user_attr(SETUP_ATTR, {"run_id": dead_run.id})
            storage.record_heartbeat(dead._trial_id)
    finally:
        close_storage(storage)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:  # its last beat was long ago
            conn.execute(
                sa.text("UPDATE trial_heartbeats SET heartbeat = :at WHERE trial_id = :id"),
                {"at": dt.datetime(2000, 1, 1), "id": dead._trial_id},
            )
    finally:
        engine.dispose()

    resumed = tune(ws, "credit", "status", trials=4, folds=3, space=space, pruner="none")

    trials = stored_study(ws, STUDY).get_trials()
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.COMPLETE]
    stale, retry = trials[2], trials[3]
    assert stale.number == dead.number
    assert ws.runs.get(dead_run.id).status == RunStatus.FAILED  # not left running forever
    assert retry.params == stale.params
    with quiet_optuna():  # Optuna calls these helpers experimental
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == stale.number
        assert RetryHeartbeatStaleTrialCallback.retry_history(retry) == [stale.number]
    run = ws.runs.get(trial_facts(retry)["run_id"])
    assert run.parent_id == resumed.run_id
    assert run.status == RunStatus.FINISHED
    assert resumed.report["trials"] == {"complete": 3, "pruned": 0, "fail": 1}
