"""Several objectives: NSGA-II, the Pareto front in the report, and the model it registers."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from fermion.errors import InvalidInputError
from fermion.tuning.study import trial_facts
from fermion.tuning.tuner import parse_objectives, tune
from fermion.workspace import Workspace

StoredStudy = Callable[[Workspace, str], optuna.Study]
# Trees of 2 to 64 leaves: the model's size varies widely while its score varies little.
SIZE_SPACE = (
    "params:\n  num_boost_round: 40\n"
    "  num_leaves: {type: int, low: 2, high: 64, log: true}\n"
    "replace: true\n"
)


def _dominates(a: list[float], b: list[float]) -> bool:
    """Maximize the first value, minimize the second."""
    better_or_equal = a[0] >= b[0] and a[1] <= b[1]
    return better_or_equal and (a[0] > b[0] or a[1] < b[1])


def test_roc_auc_against_model_size_reports_the_pareto_front(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
    stored_study: StoredStudy,
) -> None:
    ws = sqlite_ws
    add_credit(ws, n=600)
    result = tune(
        ws, "credit", "status", metric="roc_auc,size_kb", trials=10, folds=3,
        space=space_file(SIZE_SPACE), alias="small",
    )  # fmt: skip

    study = stored_study(ws, result.study)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == 10  # no pruning with two objectives
    report = result.report
    front = report["pareto_front"]
    values = {t.number: t.values for t in complete}
    assert {entry["trial"] for entry in front} == {t.number for t in study.best_trials}
    for entry in front:  # nothing dominates a trial on the front
        assert entry["values"] == {
            "roc_auc": values[entry["trial"]][0],
            "size_kb": values[entry["trial"]][1],
        }
        assert not any(_dominates(v, values[entry["trial"]]) for v in values.values())
        assert entry["run_id"] == trial_facts(study.trials[entry["trial"]])["run_id"]

    # the registered choice: the smallest front trial within the noise band of the best AUC
    best_auc = max(v[0] for v in values.values())
    near = [e for e in front if best_auc - e["values"]["roc_auc"] <= report["noise_band"]]
    chosen = report["best"]
    assert chosen["trial"] == min(near, key=lambda e: e["values"]["size_kb"])["trial"]
    assert result.best_value == chosen["values"]["roc_auc"]
    assert f"trial {chosen['trial']}" in report["choice"]

    run = ws.runs.get(result.run_id)
    assert run.params["sampler"] == "nsga2" and run.params["pruner"] == "none"
    assert run.metrics["cv_size_kb"] == pytest.approx(chosen["values"]["size_kb"])
    assert run.metrics["pareto_front_size"] == len(front)
    assert "tuning/pareto_front.png" in result.plots
    trial_run = ws.runs.get(chosen["run_id"])
    assert trial_run.metrics["size_kb"] == pytest.approx(chosen["values"]["size_kb"])
    assert result.final is not None and result.final.model is not None
    assert list(result.final.model.aliases) == ["small"]
    assert result.best_params["num_leaves"] == chosen["full_params"]["num_leaves"]


def test_latency_is_an_objective_too(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    space_file: Callable[..., str],
) -> None:
    add_credit(sqlite_ws)
    result = tune(
        sqlite_ws, "credit", "status", metric=["roc_auc", "latency_ms"], trials=4, folds=3,
        space=space_file(), sampler="random", register=False,
    )  # fmt: skip

    assert result.report["objectives"] == ["latency_ms"]
    assert all(e["values"]["latency_ms"] > 0 for e in result.report["pareto_front"])
    assert result.final is not None and result.final.model is None  # not registered


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("latency_ms", "the first objective must be a metric of the binary task"),
        ("roc_auc,size_kb,size_kb", "objective 'size_kb' is named twice"),
        ("roc_auc,rmse", "metric 'rmse' does not exist for a binary task"),
    ],
)
def test_bad_objectives_are_refused(metric: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_objectives(metric, "binary")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pruner": "hyperband"}, "the hyperband pruner needs one objective"),
        ({"sampler": "cmaes"}, "the cmaes sampler tunes one objective"),
    ],
)
def test_options_that_need_one_objective_are_refused(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
    options: dict[str, str],
    message: str,
) -> None:
    add_credit(sqlite_ws)
    with pytest.raises(InvalidInputError, match=message):
        tune(sqlite_ws, "credit", "status", metric="roc_auc,size_kb", trials=2, **options)
    assert sqlite_ws.runs.list() == []


def test_parse_objectives_defaults_to_the_task_metric() -> None:
    assert parse_objectives(None, "regression") == ("rmse",)
    assert parse_objectives("f1_macro, latency_ms", "multiclass") == ("f1_macro", "latency_ms")


def test_several_families_trade_score_against_latency(
    sqlite_ws: Workspace,
    add_credit: Callable[..., str],
) -> None:
    add_credit(sqlite_ws)
    result = tune(
        sqlite_ws, "credit", "status", model="auto", metric="roc_auc,latency_ms", trials=6,
        folds=3, register=False,
    )  # fmt: skip

    front = result.report["pareto_front"]
    assert front and all(entry["family"] for entry in front)
    assert result.report["best"]["trial"] in {entry["trial"] for entry in front}
    assert result.final is not None and "roc_auc" in result.final.metrics  # retrained, evaluated
