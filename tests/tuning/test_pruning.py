"""The fold rules (paired against the best, median) and what a trial reports."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from fermion.tuning.objective import FOLD_STEP
from fermion.tuning.pruning import FoldMedianPruner, FoldPairedPruner, TrialReporter, make_pruner

FOLD_2 = FOLD_STEP + 1  # the running mean after the second fold


def _study(direction: str, step: int, values: list[float]) -> optuna.Study:
    """An in-memory study whose complete trials reported `values` at `step` and ended there."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction=direction, pruner=FoldMedianPruner())
    for value in values:
        trial = study.ask()
        trial.report(value, step)
        study.tell(trial, value)
    return study


def _pruned(study: optuna.Study, step: int, value: float) -> bool:
    trial = study.ask()
    trial.report(value, step)
    return trial.should_prune()


def test_folds_are_judged_against_the_median() -> None:
    study = _study("maximize", FOLD_2, [0.80, 0.82, 0.84, 0.86, 0.88])
    assert _pruned(study, FOLD_2, 0.83)
    assert not _pruned(study, FOLD_2, 0.85)


def test_a_falling_running_mean_is_judged_where_it_is_now() -> None:
    study = _study("maximize", FOLD_2, [0.80, 0.82, 0.84, 0.86, 0.88])
    trial = study.ask()
    trial.report(0.95, FOLD_STEP)  # a lucky first fold
    assert not trial.should_prune()
    trial.report(0.83, FOLD_2)  # Optuna's median pruner would still judge the 0.95
    assert trial.should_prune()


def test_losses_at_rounds_are_never_judged() -> None:
    # a slow learning rate is far behind at round 64 and often ahead at the end
    losses = [-0.70 + 0.03 * i for i in range(11)]
    study = _study("maximize", 64, losses)
    assert not _pruned(study, 64, -5.0)


def test_minimised_metrics_mirror_the_rules() -> None:
    study = _study("minimize", FOLD_2, [1.0, 1.1, 1.2, 1.3, 1.4])
    assert _pruned(study, FOLD_2, 1.25)
    assert not _pruned(study, FOLD_2, 1.15)


def test_nothing_is_judged_before_five_trials_reached_the_step() -> None:
    study = _study("maximize", FOLD_2, [0.80, 0.82, 0.84, 0.86])
    assert not _pruned(study, FOLD_2, 0.10)
    assert not _pruned(study, FOLD_STEP + 2, 0.10)  # no complete trial reported that fold


class _Recorder:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def report(self, value: float, step: int) -> None:
        self.steps.append(step)

    def should_prune(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("hyperband", "expected"),
    [
        (False, [FOLD_STEP, FOLD_STEP + 1, FOLD_STEP + 2]),
        (True, [1, 2, 3]),  # hyperband: the folds are its resource
    ],
)
def test_a_trial_reports_its_fold_means_only(hyperband: bool, expected: list[int]) -> None:
    recorder = _Recorder()
    reporter = TrialReporter(recorder, hyperband=hyperband)  # type: ignore[arg-type]
    for step in range(300):
        reporter.report(0.5, step)
    for fold in range(3):
        reporter.report(0.8, FOLD_STEP + fold)
    assert recorder.steps == expected


def test_a_trial_reads_the_study_once_however_often_it_is_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = _study("maximize", FOLD_2, [0.80, 0.82, 0.84, 0.86, 0.88])
    reads = []
    get_trials = study.get_trials
    monkeypatch.setattr(study, "get_trials", lambda *a, **k: reads.append(1) or get_trials(*a, **k))
    trial = study.ask()
    for step in (FOLD_STEP, FOLD_2, FOLD_STEP + 2):
        trial.report(0.9, step)
        assert not trial.should_prune()
    assert len(reads) == 1


# -- the paired rule --------------------------------------------------------------------------

# How hard each fold is: every trial scores about these, plus its own level.
FOLD_LEVELS = np.array([0.84, 0.80, 0.86, 0.82, 0.85])
JITTER = np.array([0.004, -0.003, 0.002, -0.004, 0.001])  # each trial's fold noise, rotated


def _paired_study(direction: str, levels: list[float]) -> optuna.Study:
    """Complete five-fold trials: trial i scores FOLD_LEVELS + levels[i] + rotated jitter."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction=direction, pruner=FoldPairedPruner(5))
    for i, level in enumerate(levels):
        folds = FOLD_LEVELS + level + np.roll(JITTER, i)
        trial = study.ask()
        for k in range(5):
            trial.report(float(np.mean(folds[: k + 1])), FOLD_STEP + k)
        study.tell(trial, float(np.mean(folds)))
    return study


def _paired_pruned(study: optuna.Study, folds: list[float]) -> bool:
    """Whether a new trial with these first fold scores is stopped after its last one."""
    trial = study.ask()
    for k in range(len(folds)):
        trial.report(float(np.mean(folds[: k + 1])), FOLD_STEP + k)
    return trial.should_prune()


LEVELS = [0.0, 0.01, 0.02, 0.03, 0.04]  # the best trial is the last, at +0.04
BEST = FOLD_LEVELS + 0.04 + np.roll(JITTER, 4)  # its fold scores
# The fold spread of differences to the best is 0.0053, so the room to catch up (1.5 standard
# deviations of the rest) is about 0.0071 after one fold of five, 0.0044 after two and 0.0018
# after four.


def test_a_trial_far_behind_the_best_stops_after_its_first_fold() -> None:
    study = _paired_study("maximize", LEVELS)
    assert _paired_pruned(study, [FOLD_LEVELS[0] + 0.0])
    assert not _paired_pruned(study, [FOLD_LEVELS[0] + 0.04])


def test_a_trial_close_to_the_best_goes_on_though_below_the_median_fold() -> None:
    # an easy first fold would flatter the median rule; a hard one hurts it: the paired rule
    # compares the same folds and only asks how far behind the best the trial is
    study = _paired_study("maximize", LEVELS)
    close = list(BEST[:2] - 0.002)
    assert not _paired_pruned(study, close)
    median_study = _study("maximize", FOLD_2, [0.84, 0.85, 0.86, 0.87, 0.88])
    assert _pruned(median_study, FOLD_2, float(np.mean(close)))  # 0.8575 < 0.86


def test_more_folds_leave_less_room_to_catch_up() -> None:
    study = _paired_study("maximize", LEVELS)
    gap = 0.003  # behind the best by the same amount on every fold
    assert not _paired_pruned(study, list(BEST[:1] - gap))
    assert _paired_pruned(study, list(BEST[:4] - gap))


def test_the_paired_rule_mirrors_for_minimised_metrics() -> None:
    study = _paired_study("minimize", [-level for level in LEVELS])
    assert _paired_pruned(study, [FOLD_LEVELS[0] + 0.0])
    assert not _paired_pruned(study, [FOLD_LEVELS[0] - 0.04])


def test_the_paired_rule_waits_for_five_complete_trials_and_never_judges_the_last_fold() -> None:
    assert not _paired_pruned(_paired_study("maximize", LEVELS[:4]), [0.1])
    study = _paired_study("maximize", LEVELS)
    assert not _paired_pruned(study, [0.1] * 5)  # the trial is done: nothing left to save
    assert _paired_pruned(study, [float("nan")])  # a diverged fit


def test_paired_is_the_default_pruner_by_name() -> None:
    assert isinstance(make_pruner("paired", 5), FoldPairedPruner)
    assert isinstance(make_pruner("median", 5), FoldMedianPruner)
