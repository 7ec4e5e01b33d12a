"""Stopping a study early: N trials in a row without an improvement beyond the noise band."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna


def noise_band(trial: optuna.trial.FrozenTrial) -> float:
    """The standard error of a trial's CV score (fold spread / sqrt(folds)): differences
    smaller than this are noise."""
    import numpy as np

    from fermion.tuning.study import trial_facts

    scores = trial_facts(trial).get("fold_scores") or []
    return float(np.std(scores) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0


def primary_value(trial: optuna.trial.FrozenTrial) -> float | None:
    """The trial's score on the study's metric (the first objective of a multi-objective one)."""
    return trial.values[0] if trial.values else None


def trials_since_improvement(trials: list[optuna.trial.FrozenTrial], maximize: bool) -> int:
    """Complete trials since the last one that beat the best so far by more than its band
    (on the metric: the first objective of a multi-objective study)."""
    best: float | None = None
    band = 0.0
    since = 0
    for trial in trials:
        value = primary_value(trial)
        if value is None:
            continue
        gain = (value - best if maximize else best - value) if best is not None else None
        if gain is None or gain > band:
            best, band, since = value, noise_band(trial), 0
        else:
            since += 1
    return since


class Patience:
    """An Optuna callback that stops the study after `patience` trials without improvement."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def __call__(self, study: optuna.Study, trial: Any) -> None:
        from optuna.study import StudyDirection
        from optuna.trial import TrialState

        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        maximize = study.directions[0] == StudyDirection.MAXIMIZE
        if trials_since_improvement(complete, maximize) >= self.patience:
            study.stop()
