"""Listing, filtering, sorting and comparing runs."""

from __future__ import annotations

import pytest

from fermion.errors import InvalidInputError
from fermion.workspace import Workspace


@pytest.fixture
def three_runs(workspace: Workspace) -> list[int]:
    ids = []
    for model, auc in (("lightgbm", 0.81), ("xgboost", 0.84), ("lightgbm", 0.79)):
        with workspace.runs.start(experiment="credit") as run:
            run.log_params({"model": model, "depth": 6})
            run.log_metric("roc_auc", auc)
        ids.append(run.id)
    with workspace.runs.start(experiment="other") as run:
        run.log_metric("roc_auc", 0.99)
    return ids


def test_filter_sort_and_limit(workspace: Workspace, three_runs: list[int]) -> None:
    runs = workspace.runs.list("credit", filter="params.model = 'lightgbm'", sort="metrics.roc_auc")
    assert [r.metrics["roc_auc"] for r in runs] == [0.81, 0.79]
    ascending = workspace.runs.list("credit", sort="metrics.roc_auc asc", limit=2)
    assert [r.metrics["roc_auc"] for r in ascending] == [0.79, 0.81]
    good = workspace.runs.list(filter="metrics.roc_auc >= 0.81 and params.depth = 6")
    assert sorted(r.metrics["roc_auc"] for r in good) == [0.81, 0.84]
    assert len(workspace.runs.list(filter="status = 'finished'")) == 4


@pytest.mark.parametrize(
    ("expression", "message"),
    [("params.model ~ 'x'", "cannot parse filter"), ("weird.key = 1", "unknown run field")],
)
def test_bad_filters_are_named(workspace: Workspace, expression: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        workspace.runs.list(filter=expression)


def test_compare_marks_differences(workspace: Workspace, three_runs: list[int]) -> None:
    comparison = workspace.runs.compare(three_runs[:2])
    assert comparison.params["model"] == ["lightgbm", "xgboost"]
    assert comparison.differing_params == {"model"}
    assert comparison.differing_metrics == {"roc_auc"}
    with pytest.raises(InvalidInputError, match="at least two"):
        workspace.runs.compare(three_runs[:1])
