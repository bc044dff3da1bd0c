"""CP-SAT on the clique model: one 1D no-overlap per set of parts in use together.

Two intervals overlap exactly when they share a *maximal clique* of the interval graph (a time
span opened by a start and closed by an end, see ``exact_layout``), so the 2D no-overlap of
buffers over time and bytes is the same as a 1D no-overlap of byte intervals inside every such
clique. CP-SAT propagates a 1D no-overlap far more strongly (edge finding, detectable
precedences: a clique at the height is one machine with a common deadline) than its 2D one, and
learns clauses across cliques. Parts, not buffers, make the cliques, so gaps are exact (a gap
without a window is no interval; with a window, the window's bytes are one).

Offsets are variables ``offset_<id>`` (a multiple of the alignment through ``slot_<id>``; a
fixed offset is a constant), all within ``[0, height - size]``; ``peak`` tops every buffer.
A *bottom-left* decision strategy (lowest lower bound first, then the given order, smallest
value first) makes CP-SAT place buffers the way MiniMalloc's search does, but with clause
learning and its propagation: run under a fixed search with a few buffer orders, it solves
tight packings that its default search and the plain NoOverlap2D model do not.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> from trainplan.planner.offsets.exact_common import scale
>>> s = scale(AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4),
...                              Buffer("c", 2, 4, 8))))
>>> s.unit, s.bound  # sizes 1, 1, 2 units of 4 bytes
(4, 3)
>>> status, offsets = solve_clique(clique_model(s, 3), time_limit=5, seed=0, workers=1)
>>> status, s.height(offsets)
('FEASIBLE', 3)
>>> solve_clique(clique_model(s, 2), time_limit=5, seed=0, workers=1)[0]
'INFEASIBLE'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trainplan.planner.offsets.exact_common import Scaled
from trainplan.planner.offsets.exact_layout import build_layout

if TYPE_CHECKING:  # OR-Tools is heavy: loaded where a solve needs it
    from ortools.sat.python import cp_model


@dataclass
class CliqueModel:
    """A built model, its offset variables (one per buffer) and the peak variable."""

    model: cp_model.CpModel
    offsets: list
    peak: cp_model.IntVar
    scaled: Scaled


def clique_model(
    s: Scaled, height: int, *, order: np.ndarray | None = None, minimize: bool = False,
    hint: np.ndarray | None = None,
) -> CliqueModel:
    """The clique model with every buffer below ``height`` units; ``order`` (buffer indices)
    adds the bottom-left decision strategy, ``minimize`` the objective, ``hint`` a start."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    ids = [b.id for b in s.problem.buffers]
    # variables: offset = alignment * slot (or the fixed offset), peak over every top
    offsets = []
    for i, name in enumerate(ids):
        size, align, fixed = int(s.size[i]), int(s.align[i]), int(s.fixed[i])
        if fixed >= 0:
            offsets.append(model.new_constant(fixed))
        elif align == 1:
            offsets.append(model.new_int_var(0, max(0, height - size), f"offset_{name}"))
        else:
            slot = model.new_int_var(0, max(0, (height - size) // align), f"slot_{name}")
            offset = model.new_int_var(0, max(0, height - size), f"offset_{name}")
            model.add(offset == align * slot)
            offsets.append(offset)
    peak = model.new_int_var(min(s.bound, height), height, "peak")
    # constraints: one no-overlap per clique of parts in use together; every top below peak
    part_of, lo, hi = s.parts.buffer, s.parts.lo, s.parts.hi
    intervals = [
        model.new_fixed_size_interval_var(offsets[b] + int(a), int(z - a), f"bytes_{ids[b]}_{k}")
        for k, (b, a, z) in enumerate(zip(part_of, lo, hi))
    ]
    lay = build_layout(s.parts.start, s.parts.end)
    for k in range(lay.n_sections):
        members = lay.members[lay.ptr[k]:lay.ptr[k + 1]]
        if len(members) > 1:
            model.add_no_overlap([intervals[m] for m in members])
    for i, offset in enumerate(offsets):
        model.add(peak >= offset + int(s.size[i]))
    # search: bottom-left in the given order; objective; hint
    if order is not None:
        free = [offsets[i] for i in order if s.fixed[i] < 0]
        model.add_decision_strategy(free, cp_model.CHOOSE_LOWEST_MIN, cp_model.SELECT_MIN_VALUE)
    if minimize:
        model.minimize(peak)
    if hint is not None:
        for i, offset in enumerate(offsets):
            if s.fixed[i] < 0 and s.height(hint) <= height:
                model.add_hint(offset, int(hint[i]))
    return CliqueModel(model, offsets, peak, s)


def solve_clique(
    built: CliqueModel, *, time_limit: float, seed: int, workers: int,
    deterministic_time: float | None = None, fixed_search: bool = False, solver=None,
) -> tuple[str, np.ndarray | None]:
    """Solve; returns (status, offsets): FEASIBLE (a plan within the height; with an
    objective OPTIMAL when proven minimal), INFEASIBLE (proven: nothing fits), UNKNOWN.

    ``deterministic_time`` bounds CP-SAT's own work counter (the same on any machine and
    load); ``fixed_search`` follows the model's decision strategy. Pass ``solver`` to keep a
    handle on it (another thread may call its ``stop_search``).
    """
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver() if solver is None else solver
    params = solver.parameters
    params.max_time_in_seconds = max(0.001, time_limit)
    if deterministic_time is not None:
        params.max_deterministic_time = deterministic_time
    params.random_seed = seed
    params.num_workers = workers
    if fixed_search:
        params.search_branching = cp_model.FIXED_SEARCH
    code = solver.solve(built.model)
    if code == cp_model.INFEASIBLE:
        return "INFEASIBLE", None
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "UNKNOWN", None
    offsets = np.array([solver.value(v) for v in built.offsets], dtype=np.int64)
    proven = code == cp_model.OPTIMAL and built.model.has_objective()
    return ("OPTIMAL" if proven else "FEASIBLE"), offsets


def best_bound(solver) -> int:
    """The proven lower bound on the peak after a minimising solve."""
    return int(np.ceil(solver.best_objective_bound - 1e-6))
