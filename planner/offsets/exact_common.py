"""Shared groundwork of the exact planners: integer scaling, warm start and Plan assembly.

Sizes and alignments are divided by a common unit ``g`` so that every canonical solution (each
buffer dropped onto the buffers below it, then rounded up to its alignment) stays on the ``g``
grid: no optimum is lost and both CP-SAT and the search work on numbers ``g`` times smaller.
Gap windows and fixed offsets are on the grid too (they enter ``g``), so with them canonical
plans stay on it as well.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> s = scale(AllocationProblem((Buffer("a", 0, 2, 2048), Buffer("b", 1, 3, 1024, 4096))))
>>> s.unit, s.size.tolist(), s.align.tolist(), s.lower_bound, s.bound
(1024, [2, 1], [1, 4], 3, 3)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets.exact_layout import (
    HEURISTICS,
    build_layout,
    preorder,
    section_bound,
)
from trainplan.planner.plan import Plan

# Deterministic mode turns seconds into CP-SAT's deterministic time at this rate, measured on a
# 2-core machine with nothing else running (CP-SAT counts far less than a second of its work on
# these no-overlap models as one unit).
DTIME_PER_SECOND = 0.05


@dataclass(frozen=True)
class Parts:
    """The parts in use of every buffer (see ``Buffer.pieces``), in units: buffer index, time
    span ``[start, end)`` and bytes ``[lo, hi)`` above the buffer's offset."""

    buffer: np.ndarray
    start: np.ndarray
    end: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass(frozen=True)
class Scaled:
    """A problem in units of ``unit`` bytes; times are kept, arrays follow ``problem.buffers``.

    ``fixed`` holds each fixed offset (-1 when free) and ``hint`` each usable hint (-1 when
    none), both in units; ``plain`` says there are neither gaps nor fixed offsets, the case the
    canonical search handles.
    """

    problem: AllocationProblem
    unit: int
    start: np.ndarray
    end: np.ndarray
    size: np.ndarray
    align: np.ndarray
    lower_bound: int
    capacity: int | None
    bound: int  # the lower bound sharpened by alignment (``exact_layout.section_bound``)
    fixed: np.ndarray
    hint: np.ndarray
    parts: Parts

    @property
    def n(self) -> int:
        return len(self.size)

    @property
    def plain(self) -> bool:
        return not (self.problem.has_gaps or self.problem.has_fixed)

    def height(self, offsets: np.ndarray) -> int:
        """Peak (in units) of a scaled offset vector."""
        return int((offsets + self.size).max()) if self.n else 0

    def to_bytes(self, offsets: np.ndarray) -> dict[str, int]:
        """Scaled offsets back to a byte-offset dict keyed by buffer id."""
        return {b.id: int(o) * self.unit for b, o in zip(self.problem.buffers, offsets)}


def common_unit(sizes: list[int], aligns: list[int]) -> int:
    """Largest ``g`` dividing every size such that each alignment divides ``g`` or ``g`` it.

    >>> common_unit([2048, 1024], [1, 4096]), common_unit([6, 9], [2])
    (1024, 1)
    """
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
    grid = [b.size for b in bufs] + [b.offset for b in bufs if b.offset]
    grid += [w for b in bufs for g in b.gaps if g.window for w in g.window if w]
    g = common_unit(grid, [b.alignment for b in bufs])
    align = _ints([max(1, b.alignment // g) if b.alignment > g else 1 for b in bufs])
    cap = None if problem.capacity is None else problem.capacity // g
    start, end = _ints([b.start for b in bufs]), _ints([b.end for b in bufs])
    size = _ints([b.size // g for b in bufs])
    fixed = _ints([-1 if b.offset is None else b.offset // g for b in bufs])
    hint = _ints([b.hint // g if b.hint is not None and b.hint % g == 0 else -1 for b in bufs])
    pieces = [(i, *p) for i, b in enumerate(bufs) for p in b.pieces()]
    cols = np.array(pieces, dtype=np.int64).reshape(-1, 5).T
    parts = Parts(cols[0], cols[1], cols[2], cols[3] // g, cols[4] // g)
    lower = -(-problem.lower_bound() // g)
    bound = lower
    if not (problem.has_gaps or problem.has_fixed):
        bound = max(lower, section_bound(build_layout(start, end), size, align))
    return Scaled(problem, g, start, end, size, align, lower, cap, bound, fixed, hint, parts)


def _ints(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64).reshape(-1)


def compact(s: Scaled, offsets: dict[str, int]) -> np.ndarray:
    """Drop a valid byte plan onto the unit grid: in offset order, each buffer goes on top of
    the conflicting buffers already dropped (rounded up to its alignment). No buffer moves up,
    so the height never grows, and the result is canonical (see ``exact_search``). With gaps or
    fixed offsets the plan is only rescaled (its offsets are on the grid already)."""
    if not s.plain:
        return np.array([offsets[b.id] // s.unit for b in s.problem.buffers], dtype=np.int64)
    lay = build_layout(s.start, s.end)
    out = np.full(s.n, -1, dtype=np.int64)
    order = sorted(range(s.n), key=lambda i: offsets[s.problem.buffers[i].id])
    for i in order:
        nb = lay.nbrs[i]
        nb = nb[out[nb] >= 0]
        top = int((out[nb] + s.size[nb]).max()) if nb.size else 0
        out[i] = -(-top // int(s.align[i])) * int(s.align[i])
    return out


def greedy_warm_start(s: Scaled) -> tuple[np.ndarray, str]:
    """The lowest plan among every registered greedy planner (compacted) and a quick descent."""
    from trainplan.planner.offsets import PLANNERS  # local: the registry imports the exact planners

    best, name = None, ""
    if s.plain:
        best, name = descend(s), "descent"
    free = s.problem.with_capacity(None)
    for label, spec in PLANNERS.items():
        if spec.searches:
            continue
        offs = compact(s, spec.function(free).offsets)
        if best is None or s.height(offs) < s.height(best):
            best, name = offs, label
    return best, name


def descend(s: Scaled) -> np.ndarray:
    """A quick greedy plan: repeatedly place the buffer with the lowest minimum offset.

    Each buffer goes on top of the placed buffers it conflicts with, so the plan is valid; it
    serves as a warm start when no greedy planner is registered.
    """
    lay = build_layout(s.start, s.end)
    n = s.n
    off = np.full(n, -1, dtype=np.int64)
    low = np.zeros(n, dtype=np.int64)
    rank = preorder(lay, s.size, HEURISTICS[0]) if n else np.zeros(0, dtype=np.int64)
    for _ in range(n):
        free = np.flatnonzero(off < 0)
        b = int(free[np.lexsort((rank[free], low[free]))[0]])
        off[b] = low[b]
        nbrs = lay.nbrs[b]
        top = off[b] + s.size[b]
        step = s.align[nbrs]
        low[nbrs] = np.maximum(low[nbrs], -(-top // step) * step)
    return off


def settled(s: Scaled, hint: np.ndarray) -> dict | None:
    """Plan fields when no search is needed: hint at the bound, fits, or bound over capacity."""
    if s.height(hint) <= s.bound:
        return {"optimal": True, "status": "OPTIMAL", "best_bound": s.bound}
    if s.capacity is not None and s.bound > s.capacity:
        return {"optimal": False, "status": "INFEASIBLE", "best_bound": s.bound}
    if s.capacity is not None and s.height(hint) <= s.capacity:
        return {"optimal": False, "status": "FEASIBLE", "best_bound": s.bound}
    return None


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
