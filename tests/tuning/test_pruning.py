"""The median rule on fold means, and what a trial reports."""

from __future__ import annotations

import optuna
import pytest

from fermion.tuning.objective import FOLD_STEP
from fermion.tuning.pruning import FoldMedianPruner, TrialReporter

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
