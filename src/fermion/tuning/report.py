"""What a study found: best trial, noise band, whether more budget is likely to help, plots."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.study import StudyDirection

from fermion.tuning.patience import noise_band, trials_since_improvement
from fermion.tuning.study import trial_facts

if TYPE_CHECKING:
    import optuna


def study_report(
    study: optuna.Study, metric: str, objectives: Sequence[str] = ()
) -> dict[str, Any]:
    """Counts, the best trial with its noise band, and a word on the remaining budget.

    With `objectives` (a multi-objective study) the report also holds the Pareto front, and
    "best" is the front's trial that is best on the first objective among those whose metric
    is within the noise band of the best metric: as good as the best, and smaller or faster.
    """
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
    maximize = [d == StudyDirection.MAXIMIZE for d in study.directions]
    top = _best_on(complete, 0, maximize[0])
    band = noise_band(top)
    since = trials_since_improvement(complete, maximize[0])
    chosen = top
    # Trials of one family's study do not record it; the study does (one read, not per entry).
    family = study.user_attrs.get("fermion", {}).get("family")
    if objectives:
        report["objectives"] = list(objectives)
        front = sorted(study.best_trials, key=lambda t: t.number)
        near = [t for t in front if abs(t.values[0] - top.values[0]) <= band]
        chosen = _best_on(near or [top], 1, maximize[1])
        report["pareto_front"] = [_entry(t, family, metric, objectives) for t in front]
        report["choice"] = (
            f"trial {chosen.number}: the best {objectives[0]} on the Pareto front among the "
            f"trials whose {metric} is within the noise band ({band:.4g}) of the best "
            f"({top.values[0]:.4g}, trial {top.number})"
        )
    report |= {
        "best": _entry(chosen, family, metric, objectives),
        "noise_band": band,
        "trials_since_improvement": since,
        "advice": _advice(len(complete), since),
    }
    return report


def _best_on(
    trials: Sequence[optuna.trial.FrozenTrial], index: int, maximize: bool
) -> optuna.trial.FrozenTrial:
    """The trial with the best value of objective `index` (the earliest among equals)."""
    sign = -1.0 if maximize else 1.0
    return min(trials, key=lambda t: (sign * t.values[index], t.number))


def _entry(
    trial: optuna.trial.FrozenTrial,
    family: str | None,
    metric: str,
    objectives: Sequence[str],
) -> dict[str, Any]:
    facts = trial_facts(trial)
    entry = {
        "trial": trial.number,
        "value": trial.values[0],
        "family": facts.get("family", family),
        "params": trial.params,
        "full_params": facts.get("params", trial.params),
        "fold_scores": facts.get("fold_scores", []),
        "rounds": facts.get("rounds"),
        "run_id": facts.get("run_id"),
    }
    if objectives:
        entry["values"] = dict(zip((metric, *objectives), trial.values, strict=True))
    return entry


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
    from optuna.trial import TrialState

    from fermion.training.plots import new_figure, save_figure

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    numbers = np.array([t.number for t in complete])
    values = np.array([t.values[0] for t in complete], dtype=float)
    maximize = study.directions[0] == StudyDirection.MAXIMIZE
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
            importance = optuna.importance.get_param_importances(
                study,
                target=lambda t: t.values[0],  # the metric, also with more objectives
            )
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


def pareto_plot(study: optuna.Study, metric: str, objective: str, chosen: int, path: Path) -> Path:
    """Every complete trial's metric against the first extra objective; the front joined."""
    from optuna.trial import TrialState

    from fermion.training.plots import new_figure, save_figure

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    ax.scatter([t.values[1] for t in complete], [t.values[0] for t in complete],
               s=18, alpha=0.5, color="tab:gray", label="trial")  # fmt: skip
    ax.plot([t.values[1] for t in front], [t.values[0] for t in front],
            marker="o", color="tab:red", label="Pareto front",
            linestyle="-" if len(study.directions) == 2 else "none")  # fmt: skip
    picked = next(t for t in complete if t.number == chosen)
    ax.scatter([picked.values[1]], [picked.values[0]], s=160, marker="*", color="tab:blue",
               zorder=3, label=f"registered (trial {chosen})")  # fmt: skip
    ax.set_xlabel(objective)
    ax.set_ylabel(f"{metric} (cross-validated)")
    ax.set_title("Pareto front")
    ax.legend(loc="best")
    return save_figure(fig, path)
