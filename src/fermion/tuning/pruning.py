"""Pruning: which intermediate values a trial writes, and how the pruners judge them.

A trial reports two kinds of values (see `objective.FOLD_STEP`): the first fold's validation
loss at some boosting rounds or epochs, and its running mean score after each fold. They do
not mean the same thing, so they are not judged the same way:

- fold means are comparable across trials (the same rows, the same metric): the median
  pruner stops a trial whose running mean is below the median of the others' at that fold
  by more than the noise of the folds still to come;
- a loss at round 64 is not: a trial with a small learning rate is behind early and often
  ahead at the end. At rounds, only a trial in the worst tenth is stopped (one that is
  hopeless, not one that is slow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from fermion.errors import InvalidInputError
from fermion.tuning.objective import FOLD_STEP, Reporter

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

PRUNERS = ("median", "hyperband", "none")
# Boosting rounds are reported at powers of four from here (64, 256, 1024: a slow learning rate
# starts badly, and most trials stop early within a few hundred rounds). Epochs cost far more
# than rounds and are fewer: every EPOCH_EVERY from EPOCH_WARMUP.
ROUND_WARMUP = 64
EPOCH_WARMUP = 10
EPOCH_EVERY = 5
EPOCH_FAMILIES = frozenset({"torch_mlp"})
# At a round, a trial is stopped when it is behind this share of the complete trials.
ROUND_QUANTILE = 0.9  # behind nine in ten: the worst tenth


class FoldsAndRoundsPruner(optuna.pruners.BasePruner):
    """The median rule on fold means, minus the noise; the worst-tenth rule on rounds.

    Each rule compares the trial's value at its last step with the complete trials' values at
    that same step, and judges nothing until `n_startup_trials` of them reached it. (Optuna's
    percentile pruners take a trial's best value over all steps, mixing losses at rounds with
    scores at folds.)

    At a fold, a trial stops when it is behind the median by more than the remaining folds
    typically move a running mean: the median distance, over the complete trials, between
    their running mean at that fold and their final score. Without that margin, once the
    sampler proposes trials as good as each other, the median rule stops half of them on the
    noise of two folds.
    """

    def __init__(self, n_startup_trials: int = 5) -> None:
        self._n_startup_trials = n_startup_trials
        self._snapshot: tuple[int, list[FrozenTrial]] | None = None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        import numpy as np
        from optuna.study import StudyDirection

        step = trial.last_step
        if step is None:
            return False
        value = trial.intermediate_values[step]
        complete = [
            t
            for t in self._complete_trials(study, trial.number)
            if step in t.intermediate_values and t.value is not None
        ]
        if len(complete) < self._n_startup_trials:
            return False
        if not np.isfinite(value):  # a diverged fit
            return True
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        # In "greater is better" terms from here on.
        ahead = sign * value
        others = np.array([sign * t.intermediate_values[step] for t in complete])
        if step < FOLD_STEP:
            return bool(ahead < np.quantile(others, 1.0 - ROUND_QUANTILE))
        finals = np.array([sign * float(t.value) for t in complete])  # type: ignore[arg-type]
        margin = float(np.median(np.abs(finals - others)))
        return bool(ahead < np.median(others) - margin)

    def _complete_trials(self, study: optuna.Study, number: int) -> list[FrozenTrial]:
        """The complete trials as the trial's first check read them: one read of the study per
        trial, not one per check (trials completing meanwhile count from the next trial)."""
        from optuna.trial import TrialState

        if self._snapshot is None or self._snapshot[0] != number:
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._snapshot = (number, complete)
        return self._snapshot[1]


def make_pruner(name: str, folds: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return FoldsAndRoundsPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=folds)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise InvalidInputError(f"unknown pruner {name!r}; choose one of: {', '.join(PRUNERS)}")


class TrialReporter(Reporter):
    """Intermediate values to an Optuna trial; with Hyperband only the folds (its resource).

    Each report is a database write and each pruning check reads every trial's values, so few
    are made: boosting rounds 64, 256 and 1024 (epochs: every 5th from the 10th), and the
    running mean after each fold. The pruner is asked only right after a report.
    """

    def __init__(self, trial: optuna.Trial, *, folds_only: bool, family: str = "") -> None:
        self._trial = trial
        self._folds_only = folds_only
        self._epochs = family in EPOCH_FAMILIES
        self._fresh = False

    def report(self, value: float, step: int) -> None:
        if step >= FOLD_STEP:
            fold = step - FOLD_STEP
            self._trial.report(value, fold + 1 if self._folds_only else step)
            self._fresh = True
        elif not self._folds_only and self._reported(step):
            self._trial.report(value, step)
            self._fresh = True

    def _reported(self, step: int) -> bool:
        if self._epochs:
            return step >= EPOCH_WARMUP and step % EPOCH_EVERY == 0
        return step >= ROUND_WARMUP and _is_power_of_four(step)

    def should_prune(self) -> bool:
        if not self._fresh:
            return False
        self._fresh = False
        return self._trial.should_prune()


def _is_power_of_four(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0 and n.bit_length() % 2 == 1
