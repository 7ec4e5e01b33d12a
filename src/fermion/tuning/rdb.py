"""Optuna's RDB storage, with a trial's sampled params committed together.

Optuna commits each sampled param in a transaction of its own: nine for a LightGBM trial,
each a round trip to PostgreSQL or a commit on SQLite, which on a one-second trial costs more
than the rest of Fermion's bookkeeping. Here they wait in memory until the trial's next
write or read (Fermion writes the trial's setup attribute right after sampling, before any
fit), and are committed in one transaction then. The trial itself never waits on them:
Optuna's `Trial` keeps its own params.

The params and the attribute Fermion writes right after sampling share one transaction.

This leans on three of `RDBStorage`'s internal methods; `batched_params_supported()` says
whether the installed Optuna has them, and `open_storage` falls back to the plain storage
when it does not.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Any

from optuna.storages import RDBStorage

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState

_Pending = tuple[str, float, "BaseDistribution", "BaseDistribution | None"]
_KNOWN_TRIALS = 64


def batched_params_supported() -> bool:
    from optuna.storages._rdb import storage as rdb

    return (
        hasattr(RDBStorage, "_set_trial_param")
        and hasattr(RDBStorage, "_set_trial_param_without_commit")
        and hasattr(RDBStorage, "_set_trial_attr_without_commit")
        and hasattr(RDBStorage, "_create_new_trial")
        and hasattr(rdb, "_create_scoped_session")
        and hasattr(rdb, "models")
    )


class BatchedParamsStorage(RDBStorage):
    """`RDBStorage` whose `set_trial_param` calls are committed together, at the trial's next
    storage call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, list[_Pending]] = {}
        self._pending_lock = threading.Lock()
        # Trials as just created, for the read Optuna makes right after (one each), and
        # finished trials, which no longer change: each read of a trial is a few ms of ORM.
        self._known: OrderedDict[int, FrozenTrial | None] = OrderedDict()
        self._fresh: set[int] = set()

    def _set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
        previous_distribution: BaseDistribution | None,
    ) -> None:
        self._forget(trial_id)
        with self._pending_lock:
            self._pending.setdefault(trial_id, []).append(
                (param_name, param_value_internal, distribution, previous_distribution)
            )

    def flush_params(self, trial_id: int | None = None) -> None:
        """Commit the params waiting for `trial_id` (every trial's when None)."""
        from optuna.storages._rdb.storage import _create_scoped_session

        for pending_id, pending in self._take(trial_id):
            with _create_scoped_session(self.scoped_session, True) as session:
                self._write_params(session, pending_id, pending)

    def _take(self, trial_id: int | None) -> list[tuple[int, list[_Pending]]]:
        with self._pending_lock:
            if trial_id is None:
                batches = list(self._pending.items())
                self._pending.clear()
                return batches
            batch = self._pending.pop(trial_id, None)
            return [(trial_id, batch)] if batch else []

    def _write_params(self, session: Any, trial_id: int, pending: list[_Pending]) -> None:
        for name, value, distribution, previous in pending:
            self._set_trial_param_without_commit(
                session, trial_id, name, value, distribution, previous
            )

    # Every other call that writes or reads a trial commits its waiting params first.

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        self.flush_params(trial_id)
        self._forget(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    def _forget(self, trial_id: int) -> None:
        with self._pending_lock:
            self._known.pop(trial_id, None)
            self._fresh.discard(trial_id)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self.flush_params(trial_id)
        self._forget(trial_id)
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        # The waiting params and the attribute (Fermion's setup facts, written right after
        # sampling) go in one transaction.
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        self._forget(trial_id)
        with _create_scoped_session(self.scoped_session, True) as session:
            for pending_id, pending in self._take(trial_id):
                self._write_params(session, pending_id, pending)
            self._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.flush_params(trial_id)
        self._forget(trial_id)
        super().set_trial_system_attr(trial_id, key, value)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        self.flush_params(trial_id)
        return super().get_trial_param(trial_id, param_name)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        self.flush_params(trial_id)
        with self._pending_lock:
            known = self._known.get(trial_id)
            if known is not None and trial_id in self._fresh:  # read once, then from the db
                self._fresh.discard(trial_id)
                del self._known[trial_id]
        if known is not None:
            return copy.deepcopy(known)  # callers (a Trial) update what they get
        trial = super().get_trial(trial_id)
        if trial.state.is_finished():
            self._remember(trial_id, copy.deepcopy(trial))
        return trial

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        trial = super()._create_new_trial(study_id, template_trial)
        self._remember(trial._trial_id, copy.deepcopy(trial), fresh=True)
        return trial

    def _remember(self, trial_id: int, trial: FrozenTrial, *, fresh: bool = False) -> None:
        with self._pending_lock:
            self._known[trial_id] = trial
            self._known.move_to_end(trial_id)
            if fresh:
                self._fresh.add(trial_id)
            while len(self._known) > _KNOWN_TRIALS:
                forgotten, _ = self._known.popitem(last=False)
                self._fresh.discard(forgotten)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        self.flush_params()
        return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        # What Optuna's cache layer reads other trials with.
        self.flush_params()
        return super()._get_trials(*args, **kwargs)
