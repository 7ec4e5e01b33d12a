"""A pipeline schedule, as stored: a cron expression and where its last run got to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ScheduleRecord:
    """Pipeline `pipeline` of the project file `project_file` (an absolute path), run on
    `cron`, evaluated in the IANA time zone `timezone` ("0 3 * * *" with "Europe/Paris" is
    03:00 Paris time, whatever the season; UTC by default).

    `last_run_at` is the scheduled slot the last run was for, not when it ran; None until
    the first run, when `created_at` takes its place as the time slots are counted from.
    `last_status` is `running`, `ok`, `failed` or `interrupted`; `missed` counts, over the
    schedule's life, the slots that passed without a run of their own (no scheduler ran).
    """

    name: str
    pipeline: str
    project_file: str
    cron: str
    created_at: datetime
    last_run_at: datetime | None = None
    last_run_id: int | None = None
    last_status: str | None = None
    missed: int = 0
    timezone: str = "UTC"

    @property
    def since(self) -> datetime:
        """The time after which the next slot is due: the last run's slot, else creation."""
        return self.created_at if self.last_run_at is None else self.last_run_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pipeline": self.pipeline,
            "project_file": self.project_file,
            "cron": self.cron,
            "created_at": self.created_at,
            "last_run_at": self.last_run_at,
            "last_run_id": self.last_run_id,
            "last_status": self.last_status,
            "missed": self.missed,
            "timezone": self.timezone,
        }
