"""Named errors of the simulator: bad device profiles and malformed transfer schedules."""

from __future__ import annotations

from trainplan.planner.errors import TrainplanError


class InvalidProfile(TrainplanError):
    """A device profile with a missing field, a bad value or an unknown unit; ``field`` names it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class InvalidSchedule(TrainplanError):
    """A transfer or step list the simulator cannot run (bad kind, EO out of range, ...)."""


class InvalidPlan(TrainplanError):
    """A plan that does not cover the graph being simulated (planned for another graph/order)."""
