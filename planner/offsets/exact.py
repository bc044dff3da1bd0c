"""``exact``: an offset planner that proves optimality, racing a search against CP-SAT.

How it works:

1. **Scale and warm-start.** Sizes and alignments are divided by their common unit
   (``exact_common``); the best greedy plan is the first incumbent. If it already reaches the
   max-live lower bound it is optimal and returned at once; so is a greedy plan that fits the
   capacity of a decision problem.
2. **Race.** Two provers share the time limit. In a background thread the plain CP-SAT model of
   ``exact_cpsat`` (NoOverlap2D, redundant cumulative, hint = incumbent, fixed seed and
   ``workers - 1`` workers, at least one) works on the whole question; CP-SAT releases the
   interpreter lock while it solves, so it runs beside the search. In the main thread the
   MiniMalloc-style decision search of ``exact_search`` (canonical solutions, cross-section
   inference, dominance, decomposition at cut points, restarts, memo) answers "does a plan of
   height H exist?": for the decision problem at H = capacity, otherwise for H = lower bound,
   then H + 1, ... until a plan is found; every height proven empty raises the proven bound.
   Whichever settles the question first stops the other.
3. **Report.** The best plan found (search, CP-SAT or greedy), the best proven bound (search,
   CP-SAT or max-live), the gap between them, and a status: ``OPTIMAL`` (proven minimal),
   ``FEASIBLE`` (a plan, not proven minimal; in the decision problem: it fits the capacity),
   ``INFEASIBLE`` (proven: nothing fits the capacity; the best plan found is returned anyway) or
   ``UNKNOWN`` (decision problem, time ran out with nothing that fits). ``optimal`` is True
   only for proven-minimal plans.

The search finds full packings (every time step exactly as full as the height, such as
``trainplan.planner.perfect_packing``) that CP-SAT misses; CP-SAT proves lower bounds on loosely packed
problems faster than the search's exhaustive proofs. ``plan_cpsat`` keeps CP-SAT alone.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 8)))
>>> plan = plan_exact(p, time_limit=5)
>>> plan.arena_bytes, plan.optimal, plan.status
(12, True, 'OPTIMAL')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import threading
import time
from dataclasses import dataclass

import numpy as np

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets.exact_common import Scaled, greedy_warm_start, make_plan, scale, settled
from trainplan.planner.offsets.exact_cpsat import solve_cpsat
from trainplan.planner.offsets.exact_search import EXHAUSTED, FOUND, build_layout, decide
from trainplan.planner.plan import Plan

if TYPE_CHECKING:  # OR-Tools is heavy: loaded where a solve needs it
    from ortools.sat.python import cp_model


def plan_exact(
    problem: AllocationProblem, *, time_limit: float = 10.0, seed: int = 0, workers: int = 2
) -> Plan:
    """Optimal offsets with a proof, or the best plan and bound found in ``time_limit`` s."""
    started = time.perf_counter()
    options = {"time_limit": time_limit, "seed": seed, "workers": workers}
    s = scale(problem)
    hint, _ = greedy_warm_start(s)
    done = settled(s, hint)
    if done is not None:
        return make_plan(s, "exact", hint, started, options=options, **done)
    deadline = started + time_limit
    race = _CpsatRace(s, hint, deadline, seed, max(1, workers - 1))
    try:
        found = _search(s, hint, deadline, race.done)
    finally:
        race.finish()
    offsets, fields = _combine(s, hint, found, race.result)
    return make_plan(s, "exact", offsets, started, options=options, **fields)


@dataclass
class _Found:
    """What the search established: a plan (or None), the proven bound, a proven 'no'."""

    offsets: np.ndarray | None
    bound: int
    infeasible: bool = False


def _search(s: Scaled, hint: np.ndarray, deadline: float, stop: threading.Event) -> _Found:
    """Decision search at the capacity, or at heights rising from the lower bound."""
    lay = build_layout(s.start, s.end)
    if s.capacity is not None:
        result, offsets = decide(lay, s.size, s.align, s.capacity, deadline=deadline, stop=stop)
        return _Found(offsets, s.bound, result == EXHAUSTED)
    height = s.bound
    while height < s.height(hint):
        result, offsets = decide(lay, s.size, s.align, height, deadline=deadline, stop=stop)
        if result == FOUND:
            return _Found(offsets, height)
        if result != EXHAUSTED:
            break
        height += 1  # proven: nothing fits below height + 1
    return _Found(None, height)


class _CpsatRace:
    """CP-SAT on the same question in a background thread; ``finish`` stops and joins it."""

    def __init__(self, s: Scaled, hint: np.ndarray, deadline: float, seed: int, workers: int):
        from ortools.sat.python import cp_model

        self.solver = cp_model.CpSolver()
        self.done, self.cancel = threading.Event(), threading.Event()
        self.result: tuple[np.ndarray, dict] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(s, hint, deadline, seed, workers), daemon=True
        )
        self._thread.start()

    def _run(self, s: Scaled, hint: np.ndarray, deadline: float, seed: int, workers: int):
        try:
            remaining = deadline - time.perf_counter()
            if remaining > 0.05 and not self.cancel.is_set():
                self.result = solve_cpsat(
                    s, hint, time_limit=remaining, seed=seed, workers=workers, solver=self.solver
                )
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the main thread by finish
            self.error = exc
        finally:
            self.done.set()

    def finish(self) -> None:
        """Stop CP-SAT if it still runs, wait for it, re-raise its error if it failed."""
        self.cancel.set()
        while self._thread.is_alive():
            self.solver.stop_search()
            self._thread.join(0.05)
        if self.error is not None:
            raise self.error


def _combine(
    s: Scaled, hint: np.ndarray, found: _Found, cpsat: tuple[np.ndarray, dict] | None
) -> tuple[np.ndarray, dict]:
    """Best plan and bound of greedy, search and CP-SAT, with the status they justify."""
    plans = [hint] + [p for p in (found.offsets, cpsat and cpsat[0]) if p is not None]
    best = min(plans, key=s.height)
    bound = max(s.bound, found.bound)
    cp_fields = cpsat[1] if cpsat else {}
    if s.capacity is None:
        bound = max(bound, cp_fields.get("best_bound") or 0)
        optimal = s.height(best) <= bound
        return best, {"optimal": optimal, "status": "OPTIMAL" if optimal else "FEASIBLE",
                      "best_bound": bound}
    if s.height(best) <= s.capacity:
        optimal = s.height(best) <= bound
        return best, {"optimal": optimal, "status": "OPTIMAL" if optimal else "FEASIBLE",
                      "best_bound": bound}
    if found.infeasible or cp_fields.get("status") == "INFEASIBLE":
        return best, {"optimal": False, "status": "INFEASIBLE", "best_bound": s.capacity + 1}
    return best, {"optimal": False, "status": "UNKNOWN", "best_bound": bound}
