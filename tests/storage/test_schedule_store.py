"""The pipeline schedule store contract, on every metadata backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from fermion.entities import ScheduleRecord
from fermion.errors import ConflictError, NotFoundError
from fermion.storage import ScheduleStore, open_metadata


@pytest.fixture
def schedules(metadata_url: str) -> Iterator[ScheduleStore]:
    meta = open_metadata(metadata_url)
    yield meta.schedules
    meta.engine.dispose()


CREATED = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
SLOT = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def _record(name: str, pipeline: str = "credit") -> ScheduleRecord:
    return ScheduleRecord(name, pipeline, "/projects/credit/fermion.yaml", "0 3 * * *", CREATED)


def test_a_schedule_round_trips_every_field(schedules: ScheduleStore) -> None:
    made = schedules.add_schedule(_record("nightly"))
    assert made == schedules.get_schedule("nightly")
    assert made == ScheduleRecord(
        "nightly", "credit", "/projects/credit/fermion.yaml", "0 3 * * *", CREATED
    )
    assert made.since == CREATED and made.missed == 0 and made.last_status is None
    assert made.timezone == "UTC"
    tokyo = ScheduleRecord(
        "tokyo", "credit", "/projects/credit/fermion.yaml", "0 3 * * *", CREATED,
        timezone="Asia/Tokyo",
    )  # fmt: skip
    assert schedules.add_schedule(tokyo) == tokyo == schedules.get_schedule("tokyo")


def test_names_are_unique_and_listed_in_order(schedules: ScheduleStore) -> None:
    assert schedules.list_schedules() == []
    schedules.add_schedule(_record("zeta"))
    schedules.add_schedule(_record("alpha", pipeline="other"))
    with pytest.raises(ConflictError, match="'zeta' already exists"):
        schedules.add_schedule(_record("zeta"))
    assert [s.name for s in schedules.list_schedules()] == ["alpha", "zeta"]


def test_remove_forgets_a_schedule_and_unknown_names_are_not_found(
    schedules: ScheduleStore,
) -> None:
    schedules.add_schedule(_record("nightly"))
    schedules.remove_schedule("nightly")
    assert schedules.list_schedules() == []
    with pytest.raises(NotFoundError, match="no schedule named 'nightly'"):
        schedules.remove_schedule("nightly")
    with pytest.raises(NotFoundError, match="no schedule named 'absent'"):
        schedules.get_schedule("absent")


def test_a_slot_is_claimed_once_then_finished(schedules: ScheduleStore) -> None:
    schedules.add_schedule(_record("nightly"))
    assert schedules.claim("nightly", None, SLOT, missed=2)
    assert not schedules.claim("nightly", None, SLOT)  # the same slot, from the old value
    claimed = schedules.get_schedule("nightly")
    assert (claimed.last_run_at, claimed.last_status, claimed.missed) == (SLOT, "running", 2)
    assert claimed.since == SLOT
    schedules.finish("nightly", SLOT, 41, "ok")
    done = schedules.get_schedule("nightly")
    assert (done.last_run_id, done.last_status) == (41, "ok")

    later = SLOT + timedelta(days=1)
    assert schedules.claim("nightly", SLOT, later, missed=1)
    schedules.finish("nightly", SLOT, 40, "failed")  # a stale outcome: the slot moved on
    again = schedules.get_schedule("nightly")
    assert (again.last_run_at, again.last_run_id, again.last_status, again.missed) == (
        later,
        None,
        "running",
        3,
    )
    assert not schedules.claim("absent", None, SLOT)


def test_of_many_claims_of_one_slot_exactly_one_wins(
    schedules: ScheduleStore,
) -> None:
    schedules.add_schedule(_record("nightly"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        won = list(pool.map(lambda _: schedules.claim("nightly", None, SLOT), range(8)))
    assert won.count(True) == 1
