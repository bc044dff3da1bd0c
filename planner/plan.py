"""A Plan: where every buffer lives in the arena, how it was found and whether it is optimal."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from trainplan.planner.fileio import atomic_write_text


@dataclass(frozen=True)
class Plan:
    """Offsets per buffer id plus the planner's own account of its result.

    ``optimal`` is True when the planner proved no smaller arena exists, False when it searched
    and could not prove it (time limit), None when the planner makes no such claim (greedy).
    ``best_bound`` is the best proven lower bound on the arena (bytes); ``status`` a short word
    from the planner (``greedy``, ``OPTIMAL``, ``FEASIBLE``, ``INFEASIBLE``, ...).
    """

    planner: str
    offsets: dict[str, int]
    arena_bytes: int
    lower_bound_bytes: int
    solve_seconds: float = 0.0
    optimal: bool | None = None
    status: str = "greedy"
    best_bound: int | None = None
    options: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Arena over the lower bound (1.0 is perfect)."""
        return self.arena_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0

    @property
    def gap(self) -> float | None:
        """Relative distance between the arena and the best proven bound, when there is one."""
        if self.best_bound is None or not self.arena_bytes:
            return None
        return (self.arena_bytes - self.best_bound) / self.arena_bytes

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Plan:
        data = json.loads(text)
        data["offsets"] = {k: int(v) for k, v in data["offsets"].items()}
        return Plan(**data)

    def save(self, path: str) -> None:
        atomic_write_text(path, self.to_json())
