"""Shared groundwork of the exact planners: integer scaling, warm start and Plan assembly.

Sizes and alignments are divided by a common unit ``g`` so that every canonical solution (each
buffer dropped onto the buffers below it, then rounded up to its alignment) stays on the ``g``
grid: no optimum is lost and both CP-SAT and the search work on numbers ``g`` times smaller.

>>> from planner.allocation import AllocationProblem, Buffer
>>> s = scale(AllocationProblem((Buffer("a", 0, 2, 2048), Buffer("b", 1, 3, 1024, 4096))))
>>> s.unit, s.size.tolist(), s.align.tolist(), s.lower_bound
(1024, [2, 1], [1, 4], 3)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from planner.allocation import AllocationProblem
from planner.plan import Plan


@dataclass(frozen=True)
class Scaled:
    """A problem in units of ``unit`` bytes; times are kept, arrays follow ``problem.buffers``."""

    problem: AllocationProblem
    unit: int
    start: np.ndarray
    end: np.ndarray
    size: np.ndarray
    align: np.ndarray
    lower_bound: int
    capacity: int | None

    @property
    def n(self) -> int:
        return len(self.size)

    def height(self, offsets: np.ndarray) -> int:
        """Peak (in units) of a scaled offset vector."""
        return int((offsets + self.size).max()) if self.n else 0

    def to_bytes(self, offsets: np.ndarray) -> dict[str, int]:
        """Scaled offsets back to a byte-offset dict keyed by buffer id."""
        return {b.id: int(o) * self.unit for b, o in zip(self.problem.buffers, offsets)}


def common_unit(sizes: list[int], aligns: list[int]) -> int:
    """Largest ``g`` dividing every size such that each alignment divides ``g`` or ``g`` it."""
    g = math.gcd(*sizes) if sizes else 1
    changed = True
    while changed:
        changed = False
        for a in set(aligns):
            if g % a and a % g:
                g, changed = math.gcd(g, a), True
    return g


def scale(problem: AllocationProblem) -> Scaled:
    """Divide sizes, alignments, bound and capacity by the common unit (see module doc)."""
    bufs = problem.buffers
    g = common_unit([b.size for b in bufs], [b.alignment for b in bufs])
    arr = lambda values: np.array(values, dtype=np.int64).reshape(-1)  # noqa: E731
    align = arr([max(1, b.alignment // g) if b.alignment > g else 1 for b in bufs])
    cap = None if problem.capacity is None else problem.capacity // g
    return Scaled(
        problem, g, arr([b.start for b in bufs]), arr([b.end for b in bufs]),
        arr([b.size // g for b in bufs]), align, problem.lower_bound() // g, cap,
    )


def offsets_from_plan(s: Scaled, plan: Plan) -> np.ndarray:
    """A byte plan of the same problem as a scaled offset vector (rounded up to the grid)."""
    return np.array(
        [-(-plan.offsets[b.id] // s.unit) for b in s.problem.buffers], dtype=np.int64
    )


def greedy_warm_start(s: Scaled) -> tuple[np.ndarray, str]:
    """The lowest of the registered greedy plans (falls back to a canonical descent)."""
    from planner.offsets.exact_search import descend  # local: avoid an import cycle

    best, name = descend(s), "descent"
    for label, planner in _greedy_planners():
        offs = offsets_from_plan(s, planner(s.problem.with_capacity(None)))
        if s.height(offs) < s.height(best):
            best, name = offs, label
    return best, name


def _greedy_planners() -> list[tuple[str, object]]:
    """The greedy planners of the registry that exist (they are written alongside)."""
    try:
        from planner.offsets import greedy
    except ImportError:
        return []
    found = []
    for name in ("plan_greedy_size", "plan_greedy_breadth"):
        if hasattr(greedy, name):
            found.append((name.removeprefix("plan_"), getattr(greedy, name)))
    return found


def make_plan(
    s: Scaled, name: str, offsets: np.ndarray, started: float, *, optimal: bool | None,
    status: str, best_bound: int | None, options: dict,
) -> Plan:
    """Assemble a byte Plan from scaled offsets and the planner's account of its search."""
    return Plan(
        planner=name,
        offsets=s.to_bytes(offsets),
        arena_bytes=s.height(offsets) * s.unit,
        lower_bound_bytes=s.problem.lower_bound(),
        solve_seconds=time.perf_counter() - started,
        optimal=optimal,
        status=status,
        best_bound=None if best_bound is None else best_bound * s.unit,
        options=options,
    )
