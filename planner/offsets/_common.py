"""Small helpers every offset planner shares: alignment and building the Plan."""

from __future__ import annotations

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.plan import Plan


def align_up(offset: int, alignment: int) -> int:
    """The smallest multiple of ``alignment`` that is >= ``offset``.

    >>> align_up(5, 4), align_up(8, 4), align_up(7, 1)
    (8, 8, 7)
    """
    return -(-offset // alignment) * alignment


def greedy_plan(
    name: str, problem: AllocationProblem, offsets: dict[str, int], options: dict | None = None
) -> Plan:
    """A Plan for a greedy planner: arena = highest byte used, no optimality claim."""
    arena = max((offsets[b.id] + b.size for b in problem.buffers), default=0)
    return Plan(
        planner=name,
        offsets={b.id: int(offsets[b.id]) for b in problem.buffers},
        arena_bytes=int(arena),
        lower_bound_bytes=problem.lower_bound(),
        optimal=None,
        status="greedy",
        options=dict(options or {}),
    )
