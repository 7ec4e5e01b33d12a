"""The run and model store contracts, on every metadata backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fermion.entities import ColumnSpec, MetricPoint, RunArtifact, RunStatus, Signature
from fermion.errors import ConflictError, NotFoundError
from fermion.storage import MetadataStores, NewModelVersion, open_metadata


@pytest.fixture
def meta(metadata_url: str) -> Iterator[MetadataStores]:
    stores = open_metadata(metadata_url)
    yield stores
    stores.engine.dispose()


def test_a_run_round_trips_params_tags_metrics_and_artifacts(meta: MetadataStores) -> None:
    runs = meta.runs
    run = runs.create_run("credit", "first", environment={"python": "3.11"})
    assert run.status is RunStatus.RUNNING and run.end_time is None
    runs.log_params(run.id, {"model": "lightgbm", "num_leaves": 31, "lr": 0.05})
    runs.log_params(run.id, {"model": "lightgbm"})  # the same value again is fine
    runs.set_tags(run.id, {"owner": "ana"})
    runs.set_tags(run.id, {"owner": "bo"})
    runs.log_metrics(
        run.id,
        [
            MetricPoint("loss", 0.9, 0, 1),
            MetricPoint("loss", 0.5, 2, 3),
            MetricPoint("loss", 0.7, 1, 2),
        ],
    )
    runs.log_metrics(run.id, [MetricPoint("loss", 0.8, 1, 9)])  # an older step: not the latest
    runs.add_artifact(run.id, RunArtifact("plots/roc.png", "a" * 64, 10))
    runs.end_run(run.id, RunStatus.FINISHED)

    stored = runs.get_run(run.id)
    assert stored.experiment == "credit" and stored.status is RunStatus.FINISHED
    assert stored.params == {"lr": 0.05, "model": "lightgbm", "num_leaves": 31}
    assert stored.tags == {"owner": "bo"}
    assert stored.metrics == {"loss": 0.5}
    assert stored.environment == {"python": "3.11"}
    assert stored.duration_s is not None and stored.duration_s >= 0
    assert [p.value for p in runs.metric_history(run.id, "loss")] == [0.9, 0.7, 0.8, 0.5]
    assert runs.list_artifacts(run.id) == [RunArtifact("plots/roc.png", "a" * 64, 10)]


def test_params_cannot_change(meta: MetadataStores) -> None:
    run = meta.runs.create_run("e", "r")
    meta.runs.log_params(run.id, {"depth": 3})
    with pytest.raises(ConflictError, match="depth"):
        meta.runs.log_params(run.id, {"depth": 4})


def test_runs_list_newest_first_by_experiment_and_parent(meta: MetadataStores) -> None:
    runs = meta.runs
    a = runs.create_run("one", "a")
    b = runs.create_run("two", "b")
    child = runs.create_run("one", "trial", parent_id=a.id)
    assert [r.id for r in runs.list_runs()] == [child.id, b.id, a.id]
    assert [r.name for r in runs.list_runs("one")] == ["trial", "a"]
    assert [r.id for r in runs.list_runs(parent_id=a.id)] == [child.id]
    assert [e.name for e in runs.list_experiments()] == ["one", "two"]


def test_runs_are_found_by_a_tags_value_and_status(meta: MetadataStores) -> None:
    runs = meta.runs
    first = runs.create_run("pipelines", "a")
    second = runs.create_run("pipelines", "b")
    other = runs.create_run("pipelines", "c")
    runs.set_tags(first.id, {"cache": "k1"})
    runs.set_tags(second.id, {"cache": "k1"})
    runs.set_tags(other.id, {"cache": "k2", "k1": "cache"})
    runs.end_run(first.id, RunStatus.FINISHED)
    runs.end_run(second.id, RunStatus.FAILED, error="boom")
    assert [r.id for r in runs.find_runs("cache", "k1")] == [second.id, first.id]
    finished = runs.find_runs("cache", "k1", status=RunStatus.FINISHED)
    assert [r.id for r in finished] == [first.id]
    assert finished[0].tags == {"cache": "k1"}
    assert runs.find_runs("cache", "k3") == []
    # values are indexed (a hash index on PostgreSQL, whose B-trees refuse values over 2.7 kB)
    long = "x" * 20_000
    runs.set_tags(other.id, {"note": long})
    assert [r.id for r in runs.find_runs("note", long)] == [other.id]


def test_unknown_runs_are_not_found(meta: MetadataStores) -> None:
    for call in (
        lambda: meta.runs.get_run(999),
        lambda: meta.runs.end_run(999, RunStatus.FAILED),
        lambda: meta.runs.log_params(999, {"a": 1}),
        lambda: meta.runs.create_run("e", "r", parent_id=999),
    ):
        with pytest.raises(NotFoundError, match="999"):
            call()


def test_a_failed_run_keeps_its_error(meta: MetadataStores) -> None:
    run = meta.runs.create_run("e", "r")
    meta.runs.end_run(run.id, RunStatus.FAILED, error="Traceback ...\nValueError: boom")
    stored = meta.runs.get_run(run.id)
    assert stored.status is RunStatus.FAILED and stored.error is not None
    assert "boom" in stored.error


def _signature() -> Signature:
    return Signature((ColumnSpec("x", "float"),), "binary", ("no", "yes"), "y")


def test_model_versions_are_numbered_and_aliases_move_with_an_audit_trail(
    meta: MetadataStores,
) -> None:
    models = meta.models
    run = meta.runs.create_run("e", "r")
    v1 = models.add_version(NewModelVersion("credit", "a" * 64, "lightgbm", _signature(), run.id))
    v2 = models.add_version(NewModelVersion("credit", "b" * 64, "sklearn", _signature(), None))
    assert (v1.version, v2.version) == (1, 2)
    assert v1.signature == _signature() and v1.run_id == run.id
    models.set_alias("credit", "production", 1, actor="ana")
    models.set_alias("credit", "production", 2, actor="bo")
    assert models.get_by_alias("credit", "production").version == 2
    assert models.get_version("credit", 2).aliases == ("production",)
    assert models.get_version("credit").version == 2
    models.remove_alias("credit", "production", actor="cy")
    history = [(e.old_version, e.new_version, e.actor) for e in models.alias_history("credit")]
    assert history == [(None, 1, "ana"), (1, 2, "bo"), (2, None, "cy")]
    [summary] = models.list_models()
    assert (summary.name, summary.latest_version, summary.num_versions) == ("credit", 2, 2)


def test_unknown_models_versions_and_aliases_are_not_found(meta: MetadataStores) -> None:
    meta.models.add_version(NewModelVersion("credit", "a" * 64, "sklearn", _signature()))
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        meta.models.get_version("nope")
    with pytest.raises(NotFoundError, match="no version 7"):
        meta.models.get_version("credit", 7)
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        meta.models.get_by_alias("credit", "staging")
    with pytest.raises(NotFoundError, match="no version 3"):
        meta.models.set_alias("credit", "staging", 3, actor="a")


def test_concurrent_registrations_get_distinct_numbers(meta: MetadataStores) -> None:
    numbers: list[int] = []

    def register(i: int) -> None:
        new = NewModelVersion("m", f"{i:064d}", "sklearn", _signature())
        numbers.append(meta.models.add_version(new).version)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
