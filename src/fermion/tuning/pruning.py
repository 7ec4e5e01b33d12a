"""Pruning: which intermediate values a trial writes, and how the pruners judge them.

A trial reports its running mean score after each fold (`objective.FOLD_STEP` + fold). Fold
scores are comparable across trials (the same rows, the same metric), so:

- `paired` (the default) compares a trial's folds so far with the best complete trial's same
  folds and stops it when, allowing for the noise of the folds still to come, it would still
  end behind the best (`FoldPairedPruner`);
- `median` stops a trial whose running mean is below the median of the complete trials' at
  that fold (`FoldMedianPruner`).

Losses at boosting rounds or epochs are not judged: a trial with a small learning rate is far
behind at round 64 and often the best at the end, and stopping such trials cost the tuned
score on `modeldata/credit_data` what they saved in time (docs/benchmarks.md). The objective
still offers them to its reporter; this one drops them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import optuna

from fermion.errors import InvalidInputError
from fermion.tuning.objective import FOLD_STEP, Reporter

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

PRUNERS = ("paired", "median", "hyperband", "none")


class _FoldPruner(optuna.pruners.BasePruner):
    """What both fold rules share: the complete trials, read once per trial."""

    def __init__(self, n_startup_trials: int) -> None:
        self._n_startup_trials = n_startup_trials
        self._snapshot: tuple[int, list[FrozenTrial]] | None = None

    def _complete_trials(self, study: optuna.Study, number: int) -> list[FrozenTrial]:
        """The complete trials as the trial's first check read them: one read of the study per
        trial, not one per fold (trials completing meanwhile count from the next trial)."""
        from optuna.trial import TrialState

        if self._snapshot is None or self._snapshot[0] != number:
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._snapshot = (number, complete)
        return self._snapshot[1]


class FoldPairedPruner(_FoldPruner):
    """Stops a trial that, fold for fold, trails the best complete trial beyond the noise.

    After fold k of n the trial's fold scores minus the best trial's on the same folds give
    the mean difference so far, d. The folds still to come are predicted from d, with the
    spread s of such fold-by-fold differences among the complete trials (their median
    standard deviation against the best): the final mean difference is d give or take
    s * sqrt(r + r^2 / k) / n for r folds remaining. The trial stops when d plus `z` (1.5) of
    those standard deviations is still below zero, i.e. when even a clearly better than
    expected rest would leave it behind the best. (With z = 1 the credit benchmark lost the
    best score on one seed of five: the more trials are stopped, the further TPE's path
    moves from the unpruned one.)

    Against the median rule this keeps trials that are behind the median but close to the
    best (late in a study most trials are, and one of them may become the best), and stops
    clearly worse trials from the first fold on; on credit data it cut more time and kept
    the best score (docs/benchmarks.md). The same idea as Optuna's Wilcoxon pruner, which
    needs more folds than the usual five to ever reach its p-value.
    """

    def __init__(self, n_folds: int, *, z: float = 1.5, n_startup_trials: int = 5) -> None:
        super().__init__(n_startup_trials)
        self._n_folds = n_folds
        self._z = z
        self._reference: tuple[int, np.ndarray, float] | None = None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < FOLD_STEP:
            return False
        seen = step - FOLD_STEP + 1
        remaining = self._n_folds - seen
        if remaining <= 0:
            return False
        sign = _sign(study)
        scores = _fold_scores(trial, seen, sign)
        if scores is None:
            return False
        if not np.all(np.isfinite(scores)):  # a diverged fit
            return True
        reference = self._best_folds(study, trial.number, sign)
        if reference is None:
            return False
        best, spread = reference
        behind = float(np.mean(scores - best[:seen]))
        noise = spread * np.sqrt(remaining + remaining**2 / seen) / self._n_folds
        return bool(behind + self._z * noise < 0)

    def _best_folds(
        self, study: optuna.Study, number: int, sign: float
    ) -> tuple[np.ndarray, float] | None:
        """The best complete trial's fold scores and the fold spread of differences from it."""
        if self._reference is not None and self._reference[0] == number:
            return self._reference[1], self._reference[2]
        folds = [
            scores
            for t in self._complete_trials(study, number)
            if (scores := _fold_scores(t, self._n_folds, sign)) is not None
            and np.all(np.isfinite(scores))
        ]
        if len(folds) < self._n_startup_trials:
            return None
        means = [float(np.mean(f)) for f in folds]
        best = folds[int(np.argmax(means))]
        spread = float(np.median([np.std(f - best, ddof=1) for f in folds if f is not best]))
        self._reference = (number, best, spread)
        return best, spread


def _sign(study: optuna.Study) -> float:
    """+1 where greater is better, -1 where less is: scores are compared as sign * value."""
    from optuna.study import StudyDirection

    return 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0


def _fold_scores(trial: FrozenTrial, folds: int, sign: float) -> np.ndarray | None:
    """The first `folds` fold scores (times `sign`) from the running means, or None when the
    trial did not report them all."""
    try:
        means = [sign * trial.intermediate_values[FOLD_STEP + k] for k in range(folds)]
    except KeyError:
        return None
    totals = np.array(means) * np.arange(1, folds + 1)
    return np.diff(totals, prepend=0.0)


class FoldMedianPruner(_FoldPruner):
    """The median rule on fold means.

    The trial's running mean at its last fold is compared with the complete trials' running
    means at that same fold, once `n_startup_trials` of them reached it. (Optuna's median
    pruner compares a trial's best value over all its steps; a running mean that falls is
    exactly what should count here.) A noise margin of half the typical move of a running
    mean over the remaining folds was measured too: it kept the best score on credit data
    by 0.0002 and cut the time saved from 22% to 13% (docs/benchmarks.md).
    """

    def __init__(self, n_startup_trials: int = 5) -> None:
        super().__init__(n_startup_trials)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < FOLD_STEP:
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
        sign = _sign(study)
        # In "greater is better" terms from here on.
        others = np.array([sign * t.intermediate_values[step] for t in complete])
        return bool(sign * value < np.median(others))


def make_pruner(name: str, folds: int) -> optuna.pruners.BasePruner:
    if name == "paired":
        return FoldPairedPruner(folds)
    if name == "median":
        return FoldMedianPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=folds)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise InvalidInputError(f"unknown pruner {name!r}; choose one of: {', '.join(PRUNERS)}")


class TrialReporter(Reporter):
    """The running mean after each fold, to an Optuna trial: at `FOLD_STEP` + fold for the
    median pruner, at fold 1, 2, ... for Hyperband (the folds are its resource). Each report
    is a database write, and the pruner is asked only right after one."""

    def __init__(self, trial: optuna.Trial, *, hyperband: bool) -> None:
        self._trial = trial
        self._hyperband = hyperband
        self._fresh = False

    def report(self, value: float, step: int) -> None:
        if step >= FOLD_STEP:
            fold = step - FOLD_STEP
            self._trial.report(value, fold + 1 if self._hyperband else step)
            self._fresh = True

    def should_prune(self) -> bool:
        if not self._fresh:
            return False
        self._fresh = False
        return self._trial.should_prune()
