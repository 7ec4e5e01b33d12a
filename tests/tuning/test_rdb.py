"""Sampled params are committed together, and nothing of them is lost."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from sqlalchemy import event

from fermion.tuning.rdb import BatchedParamsStorage, batched_params_supported
from fermion.tuning.study import close_storage, open_storage, quiet_optuna


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def _transactions(storage: optuna.storages.RDBStorage) -> list[list[str]]:
    """The SQL statements run on the storage's engine from now on, one list per transaction."""
    log: list[list[str]] = [[]]

    def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        log[-1].append(sql)

    def commit(_connection: object) -> None:
        log.append([])

    event.listen(storage.engine, "before_cursor_execute", statement)
    event.listen(storage.engine, "commit", commit)
    return log


def _param_inserts(transaction: list[str]) -> int:
    return sum(sql.startswith("INSERT INTO trial_params") for sql in transaction)


# ask/tell outside Study.optimize: Optuna warns that heartbeats are not kept then.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


def test_a_trials_params_cost_one_commit_and_all_are_stored(url: str) -> None:
    assert batched_params_supported()  # the installed Optuna has what the batching needs
    storage = open_storage(url)
    assert isinstance(storage, BatchedParamsStorage)
    try:
        with quiet_optuna():
            study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
            transactions = _transactions(storage)
            trial = study.ask()
            sampled = {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(9)}
            assert sum(map(_param_inserts, transactions)) == 0  # nothing written while sampling
            trial.set_user_attr("fermion", {"params": sampled})
            study.tell(trial, 0.5)
        # the nine params in one transaction, committed before the attribute's
        assert len([n for n in map(_param_inserts, transactions) if n]) == 1
    finally:
        close_storage(storage)

    plain = optuna.storages.RDBStorage(url)
    try:
        with quiet_optuna():
            (stored,) = optuna.load_study(study_name="s", storage=plain).get_trials()
        assert stored.params == sampled
        assert stored.value == 0.5
    finally:
        plain.remove_session()
        plain.engine.dispose()


def test_params_are_committed_before_other_trials_are_read(url: str) -> None:
    storage = open_storage(url)
    try:
        with quiet_optuna():
            study = optuna.create_study(study_name="s", storage=storage)
            trial = study.ask()
            trial.suggest_int("depth", 2, 10)
            running = study.get_trials(deepcopy=False)  # e.g. TPE's constant liar
        assert "depth" in running[0].params
    finally:
        close_storage(storage)


def test_a_new_trial_and_a_finished_one_are_read_from_memory(url: str) -> None:
    storage = open_storage(url)
    try:
        with quiet_optuna():
            study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
            transactions = _transactions(storage)
            trial = study.ask()  # Optuna reads the trial it just created
            x = trial.suggest_float("x", 0.0, 1.0)
            trial.set_user_attr("fermion", {"x": x})
            study.tell(trial, 0.25)
            reads = [
                sql
                for transaction in transactions
                for sql in transaction
                if sql.startswith("SELECT") and "FROM trials" in sql and "trial_id = " in sql
            ]
            finished = [storage.get_trial(trial._trial_id) for _ in range(3)]
        finished[0].params["x"] = -1.0  # what a caller does to its copy stays with it
        for copy in finished[1:]:
            assert copy.params == {"x": x} and copy.value == 0.25
            assert copy.user_attrs == {"fermion": {"x": x}}
            assert copy.state.is_finished()
        assert storage.get_trial(trial._trial_id).params == {"x": x}
        assert len(reads) <= 6  # Optuna alone reads the trial row a dozen times
    finally:
        close_storage(storage)
