"""Optuna underneath: samplers, pruners, and studies stored in the workspace's database."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fermion.errors import (
    ConflictError,
    InvalidInputError,
    MissingDependencyError,
    StorageError,
    first_line,
)

if TYPE_CHECKING:
    import optuna

    from fermion.tuning.space import SearchSpace

SAMPLERS = ("tpe", "random", "cmaes", "grid", "nsga2")
# A worker that stops beating for this long is dead: its trial fails and is retried once.
HEARTBEAT_S = 10
GRACE_S = 30
# A trial's facts, in two user attributes (each one is a database write): what it ran, and
# what it scored.
SETUP_ATTR = "fermion"  # family, params (with the fixed ones), run_id, worker
RESULT_ATTR = "fermion_result"  # fold_scores, rounds, fit_seconds, objectives


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's experimental-feature warnings and info logs are noise to a Fermion user."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials are counted and kept as runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@dataclass(frozen=True)
class StudyKey:
    """What makes a study: trials of different spaces or objectives cannot share one."""

    family: str
    data: str
    target: str
    metric: str
    direction: str
    space: str  # the search space's fingerprint
    folds: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from fermion.tuning.rdb import BatchedParamsStorage, batched_params_supported

    storage_class = (
        BatchedParamsStorage if batched_params_supported() else optuna.storages.RDBStorage
    )
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        with quiet_optuna():
            storage = storage_class(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except Exception as exc:
        raise StorageError(f"cannot open the study storage: {first_line(exc)}") from exc
    if url.startswith("sqlite"):
        _serialized_sqlite(storage)
    return storage


def _serialized_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """Each Optuna transaction on SQLite takes the write lock when it begins, and commits
    without waiting for the disk more than WAL mode needs.

    pysqlite begins a transaction only at the first write, so two workers could both read a
    waiting trial (the warm start, a retry) and both mark it running: one trial, run twice."""
    from sqlalchemy import event

    def no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # The workspace database is in WAL mode, where NORMAL loses no committed data on a
        # crash of the process (only on power loss) and halves the cost of each commit.
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    def begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(storage.engine, "connect", no_implicit_begin)
    event.listen(storage.engine, "begin", begin_immediate)
    close_storage(storage)  # connections made before the listeners are not reused


def close_storage(storage: optuna.storages.RDBStorage) -> None:
    """Close the storage's pooled connections, which Optuna leaves open until collected."""
    storage.remove_session()
    storage.engine.dispose()


def make_sampler(
    name: str,
    seed: int,
    space: SearchSpace | None,
    *,
    trials: int = 40,
    parallel: bool = False,
) -> optuna.samplers.BaseSampler:
    """`space` is needed by the grid sampler only (None for a study across families); `trials`
    sizes NSGA-II's generations, so that a study of `trials` sees several of them.

    With `parallel` workers, TPE treats running trials as bad ones (the constant liar) so that
    workers do not all try the same region; that makes it read the study at every sample, so a
    lone worker does without."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=parallel)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        _require_cmaes()
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        if space is None:
            raise InvalidInputError("the grid sampler needs one model family's search space")
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=min(50, max(8, trials // 4))
        )
    raise InvalidInputError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")


def _require_cmaes() -> None:
    """Optuna imports `cmaes` only at the first sampled trial, where every trial would fail."""
    import importlib

    try:
        importlib.import_module("cmaes")
    except ImportError as exc:
        raise MissingDependencyError(
            "the cmaes sampler needs the cmaes package: pip install cmaes"
        ) from exc


def grid_of(space: SearchSpace, points: int = 4) -> dict[str, list[Any]]:
    """A grid over the space: every choice, and `points` values across each range.

    A conditional param is on the grid too; where its condition fails, its value is ignored."""
    import numpy as np

    grid: dict[str, list[Any]] = {}
    for dim in space.dimensions:
        if dim.kind == "categorical":
            grid[dim.name] = list(dim.choices)
            continue
        assert dim.low is not None and dim.high is not None  # numeric dimensions have a range
        low, high = float(dim.low), float(dim.high)
        if dim.step is not None:  # a stepped range: every `points`-th value on its own grid
            count = round((high - low) / float(dim.step)) + 1
            values = low + float(dim.step) * np.unique(np.linspace(0, count - 1, points).round())
        elif dim.log:
            values = np.geomspace(low, high, points)
        else:
            values = np.linspace(low, high, points)
        if dim.kind == "int":
            grid[dim.name] = sorted({int(np.rint(v)) for v in values})
        else:
            grid[dim.name] = [float(v) for v in values]
    return grid


def open_study(
    storage: optuna.storages.RDBStorage,
    name: str,
    key: StudyKey,
    *,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    new: bool = False,
) -> optuna.Study:
    """Create the study, or resume it when it was made for the same key; `new` starts over."""
    import optuna
    from optuna.study import StudyDirection

    with quiet_optuna():
        existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if name in existing and new:
            optuna.delete_study(study_name=name, storage=storage)
        elif name in existing:
            study = optuna.load_study(
                study_name=name, storage=storage, sampler=sampler, pruner=pruner
            )
            stored = study.user_attrs.get("fermion")
            if stored != key.to_dict():
                raise ConflictError(
                    f"study {name!r} was made for {_difference(stored, key.to_dict())}; "
                    "pass --new to start it over, or --study NAME for another one"
                )
            return study
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=[
                StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE
                for d in key.direction.split(",")
            ],
        )
        study.set_user_attr("fermion", key.to_dict())
        return study


def _difference(stored: Any, wanted: dict[str, Any]) -> str:
    if not isinstance(stored, dict):
        return "something else (not a Fermion study)"
    changed = [k for k in wanted if stored.get(k) != wanted[k]]
    return ", ".join(f"{k}={stored.get(k)!r} (now {wanted[k]!r})" for k in changed)


def trial_facts(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """What a Fermion trial recorded: family, params, run_id, fold_scores, rounds, ..."""
    facts: dict[str, Any] = {}
    for attr in (SETUP_ATTR, RESULT_ATTR):
        value = trial.user_attrs.get(attr)
        if isinstance(value, dict):
            facts |= value
    return facts
