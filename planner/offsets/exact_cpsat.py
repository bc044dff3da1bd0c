"""Plain CP-SAT offset planner: the textbook NoOverlap2D model, kept alone for comparison.

Each buffer is a rectangle whose time side is fixed (``[start, end)``) and whose memory side
``[offset, offset + size)`` is free, with ``offset = alignment * k``. One ``add_no_overlap_2d``
forbids two rectangles from sharing area; a redundant ``add_cumulative`` over the time intervals
(demands = sizes, capacity = the peak variable) hands the max-live bound to propagation. All
numbers are divided by their common unit, the best greedy plan is given as a hint, and the peak
variable starts at the max-live lower bound (sharpened by alignment padding, see
``exact_layout.section_bound``), so reaching that bound proves optimality at once.
Without ``problem.capacity`` the peak is minimised; with it the model is the decision problem
"fit within capacity". Gaps make a buffer several rectangles (its parts in use) sharing one
offset; a fixed offset is a constant; MiniMalloc's hints, where given, override the greedy
hint. ``deterministic=True`` bounds CP-SAT by its deterministic time (``time_limit`` of it) in
its deterministic parallel mode, so the plan does not depend on the machine's load. Plain
CP-SAT does not scale to tight problems of a few hundred buffers; ``plan_exact`` adds a
MiniMalloc-style search and the stronger clique model for those.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 8)))
>>> plan = plan_cpsat(p, time_limit=5)
>>> plan.arena_bytes, plan.optimal, plan.status
(12, True, 'OPTIMAL')
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets.exact_common import (
    DTIME_PER_SECOND,
    Scaled,
    greedy_warm_start,
    make_plan,
    scale,
    settled,
)
from trainplan.planner.plan import Plan

if TYPE_CHECKING:  # OR-Tools is heavy: loaded where a solve needs it
    from ortools.sat.python import cp_model


def plan_cpsat(
    problem: AllocationProblem, *, time_limit: float = 10.0, seed: int = 0, workers: int = 2,
    deterministic: bool = False,
) -> Plan:
    """Solve the NoOverlap2D model with CP-SAT (see module doc); warm-started from greedy."""
    started = time.perf_counter()
    s = scale(problem)
    options = {"time_limit": time_limit, "seed": seed, "workers": workers,
               "deterministic": deterministic}
    hint, _ = greedy_warm_start(s)
    remaining = max(0.01, time_limit - (time.perf_counter() - started))
    work = time_limit * DTIME_PER_SECOND if deterministic else None
    offsets, fields = solve_cpsat(s, hint, time_limit=remaining, seed=seed, workers=workers,
                                  deterministic_time=work)
    if deterministic:  # the clock cut the work short: the plan may depend on the load
        options["cut_by_clock"] = time.perf_counter() - started >= time_limit
    return make_plan(s, "cpsat", offsets, started, options=options, **fields)


def solve_cpsat(
    s: Scaled, hint: np.ndarray, *, time_limit: float, seed: int, workers: int,
    solver: cp_model.CpSolver | None = None, deterministic_time: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Run the model; return scaled offsets and the Plan fields (optimal, status, best_bound).

    Statuses follow CP-SAT: OPTIMAL (proven minimal), FEASIBLE (a plan, not proven minimal; in
    the decision problem: it fits), INFEASIBLE (nothing fits the capacity), UNKNOWN (time ran
    out before anything was proven; the hint is returned). Pass ``solver`` to keep a handle
    on it (another thread may call its ``stop_search``). ``time_limit`` counts from the call:
    building the model (and loading OR-Tools the first time) comes out of it.
    """
    entered = time.perf_counter()
    done = settled(s, hint)
    if done is not None:
        return hint, done
    limit = s.capacity if s.capacity is not None else s.height(hint)
    model, slots, peak = _build_model(s, limit, hint)
    if s.capacity is None:
        model.minimize(peak)
    # solve
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver() if solver is None else solver
    solver.parameters.max_time_in_seconds = max(0.01, time_limit - (time.perf_counter() - entered))
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = workers
    if deterministic_time is not None:
        solver.parameters.max_deterministic_time = deterministic_time
        solver.parameters.interleave_search = True
    code = solver.solve(model)
    # extract
    return _extract(s, solver, code, slots, hint)


def _build_model(
    s: Scaled, limit: int, hint: np.ndarray
) -> tuple[cp_model.CpModel, list, cp_model.IntVar]:
    """Variables, constraints and hint of the NoOverlap2D model with peak <= ``limit`` units."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    ids = [b.id for b in s.problem.buffers]
    # data: the parts in use (one per buffer without gaps)
    parts = s.parts
    # variables: offset_<id> = alignment * slot_<id> (a constant when fixed), peak in
    # [lower bound, limit]
    peak = model.new_int_var(min(s.bound, limit), limit, "peak")
    slots = [
        model.new_constant(int(f) // int(al)) if f >= 0 else
        model.new_int_var(0, max(0, (limit - int(sz)) // int(al)), f"slot_{i}")
        for i, sz, al, f in zip(ids, s.size, s.align, s.fixed)
    ]
    offsets = [int(al) * v for v, al in zip(slots, s.align)]
    times = [
        model.new_fixed_size_interval_var(int(st), int(en - st), f"time_{ids[b]}_{k}")
        for k, (b, st, en) in enumerate(zip(parts.buffer, parts.start, parts.end))
    ]
    spaces = [
        model.new_fixed_size_interval_var(offsets[b] + int(lo), int(hi - lo), f"bytes_{ids[b]}_{k}")
        for k, (b, lo, hi) in enumerate(zip(parts.buffer, parts.lo, parts.hi))
    ]
    # constraints: no two rectangles share area; the redundant cumulative; the peak
    model.add_no_overlap_2d(times, spaces)
    model.add_cumulative(times, [int(hi - lo) for lo, hi in zip(parts.lo, parts.hi)], peak)
    for off, sz in zip(offsets, s.size):
        model.add(peak >= off + int(sz))
    # hint: MiniMalloc's hints where given, else the warm start (CP-SAT repairs what breaks)
    for v, h, given, sz, al, f in zip(slots, hint, s.hint, s.size, s.align, s.fixed):
        if f < 0:
            start = int(given) if given >= 0 else int(h)
            model.add_hint(v, min(start // int(al), max(0, (limit - int(sz)) // int(al))))
    model.add_hint(peak, min(s.height(hint), limit))
    return model, slots, peak


def _extract(
    s: Scaled, solver: cp_model.CpSolver, code, slots: list, hint: np.ndarray
) -> tuple[np.ndarray, dict]:
    """Offsets and Plan fields from a finished solve (see ``solve_cpsat`` for statuses)."""
    from ortools.sat.python import cp_model

    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        proven = code == cp_model.INFEASIBLE
        bound = s.capacity + 1 if proven and s.capacity is not None else s.bound
        status = "INFEASIBLE" if proven else "UNKNOWN"
        return hint, {"optimal": False, "status": status, "best_bound": bound}
    found = np.array([solver.value(v) for v in slots], dtype=np.int64) * s.align
    best = found if s.height(found) <= s.height(hint) else hint
    if s.capacity is None:
        bound = max(s.bound, int(np.ceil(solver.best_objective_bound - 1e-6)))
    else:
        best, bound = found, s.bound
    optimal = s.height(best) <= bound
    return best, {"optimal": optimal, "status": "OPTIMAL" if optimal else "FEASIBLE",
                  "best_bound": bound}
