"""What a study found: best trial, noise band, whether more budget is likely to help, plots."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fermion.tuning.patience import noise_band, trials_since_improvement

if TYPE_CHECKING:
    import optuna


def study_report(study: optuna.Study, metric: str) -> dict[str, Any]:
    """Counts, the best trial with its noise band, and a word on the remaining budget."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {
        state.name.lower(): sum(1 for t in trials if t.state == state)
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    report: dict[str, Any] = {"study": study.study_name, "metric": metric, "trials": counts}
    if not complete:
        return report
    maximize = study.direction == StudyDirection.MAXIMIZE
    best = study.best_trial
    band = noise_band(best)
    since = trials_since_improvement(complete, maximize)
    report |= {
        "best": {
            "trial": best.number,
            "value": best.value,
            "family": best.user_attrs.get(
                "family", study.user_attrs.get("fermion", {}).get("family")
            ),
            "params": best.params,
            "full_params": best.user_attrs.get("params", best.params),
            "fold_scores": best.user_attrs.get("fold_scores", []),
            "rounds": best.user_attrs.get("rounds"),
            "run_id": best.user_attrs.get("run_id"),
        },
        "noise_band": band,
        "trials_since_improvement": since,
        "advice": _advice(len(complete), since),
    }
    return report


def _advice(complete: int, since: int) -> str:
    """Plateau rule of thumb: the last half of the trials found nothing beyond the noise."""
    if complete >= 10 and since >= complete / 2:
        return (
            f"no improvement beyond the noise band in the last {since} of {complete} trials: "
            "more trials are unlikely to help"
        )
    return "the study was still improving: more trials may help"


def history_plot(study: optuna.Study, metric: str, path: Path) -> Path:
    """Each complete trial's score and the best so far, by trial number."""
    import numpy as np
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from fermion.training.plots import new_figure, save_figure

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    numbers = np.array([t.number for t in complete])
    values = np.array([t.value for t in complete], dtype=float)
    maximize = study.direction == StudyDirection.MAXIMIZE
    best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    ax.scatter(numbers, values, s=18, alpha=0.6, label="trial")
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} (cross-validated)")
    ax.set_title("Optimization history")
    ax.legend(loc="best")
    return save_figure(fig, path)


def importance_plot(study: optuna.Study, path: Path) -> Path | None:
    """How much each param explains the score (fANOVA); None with too few trials."""
    import optuna
    from optuna.trial import TrialState

    from fermion.training.plots import new_figure, save_figure

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 3:
        return None
    try:
        with warnings.catch_warnings():  # "few trials in a regime": the plot says as much
            warnings.simplefilter("ignore")
            importance = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return None  # e.g. every trial had the same params
    if not importance:
        return None
    names = list(importance)[::-1]
    fig = new_figure(7.0, 0.5 + 0.35 * len(names))
    ax = fig.add_subplot()
    ax.barh(names, [importance[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (share of explained variance)")
    ax.set_title("Parameter importance")
    return save_figure(fig, path)
