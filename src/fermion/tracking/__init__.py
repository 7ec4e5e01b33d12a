"""Experiment tracking: runs with params, metrics, tags, artifacts, inputs and environment."""

from __future__ import annotations

from fermion.tracking.run import Run, active_run
from fermion.tracking.tracker import Tracker

__all__ = ["Run", "Tracker", "active_run"]
