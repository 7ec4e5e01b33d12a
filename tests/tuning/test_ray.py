"""`--backend ray`: trials as Ray tasks on a local Ray instance with 2 CPUs, started here."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator

import optuna
import pytest
from optuna.trial import TrialState

from fermion.errors import FermionError, MissingDependencyError
from fermion.tuning.study import trial_facts
from fermion.tuning.tuner import tune
from fermion.workspace import Workspace

StoredStudy = Callable[[Workspace, str], optuna.Study]


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        configure_logging=False,
    )
    yield
    ray.shutdown()


def test_trials_run_as_ray_tasks_sharing_one_study(
    local_ray: None,
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
) -> None:
    import ray

    add_credit(sqlite_ws)
    result = tune(
        sqlite_ws, "credit", "status", trials=6, folds=3, jobs=2, backend="ray",
        space=space_file(), pruner="none",
    )  # fmt: skip

    assert ray.is_initialized()  # the caller's Ray instance is left running
    study = stored_study(sqlite_ws, result.study)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials)
    assert len(trials) >= 6
    workers = {trial_facts(t)["worker"] for t in trials}
    # Ray worker processes ran them (two tasks; the first may finish these fast trials alone)
    assert 1 <= len(workers) <= 2
    assert f"{socket.gethostname()}:{os.getpid()}" not in workers
    children = sqlite_ws.runs.list(parent_id=result.run_id)
    assert sorted(r.id for r in children) == sorted(trial_facts(t)["run_id"] for t in trials)
    assert all(r.status.value == "finished" for r in children)
    run = sqlite_ws.runs.get(result.run_id)
    assert run.params["backend"] == "ray" and run.params["jobs"] == 2
    assert result.final is not None and result.final.model is not None


def test_ray_missing_is_one_clear_error(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_credit(sqlite_ws)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError

    with pytest.raises(MissingDependencyError, match=r"pip install 'fermion\[ray\]'"):
        tune(sqlite_ws, "credit", "status", trials=2, backend="ray")

    assert sqlite_ws.runs.list() == []  # refused before any run was started


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
        ("head-node", "RAY_ADDRESS must be host:port or ray://host:port, not 'head-node'"),
    ],
)
def test_a_ray_cluster_that_does_not_answer_is_one_clear_error(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    address: str,
    message: str,
) -> None:
    pytest.importorskip("ray")
    add_credit(sqlite_ws)
    monkeypatch.setenv("RAY_ADDRESS", address)

    with pytest.raises(FermionError, match=message):
        tune(sqlite_ws, "credit", "status", trials=2, backend="ray")

    assert sqlite_ws.runs.list() == []  # refused before any run was started
