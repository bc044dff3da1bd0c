"""``exact``: an offset planner that proves optimality, with a portfolio on both cores.

How it works:

1. **Scale and warm-start.** Sizes and alignments are divided by their common unit
   (``exact_common``); the best greedy plan is the first incumbent. If it already reaches the
   lower bound (max-live, sharpened by alignment per section) it is optimal and returned at
   once; so is a greedy plan that fits the capacity of a decision problem.
2. **Decide heights.** ``exact_portfolio.decide_height`` answers "does a plan of height H
   exist?": the problem splits into independent time windows, and on each the MiniMalloc-style
   search (``exact_search``) races CP-SAT slices on the clique model (``exact_clique``). With a
   capacity that is the whole question. Without one, heights rise from the lower bound while
   they are proven empty (each proof raises the bound), for at most half the time.
3. **Minimise.** If the heights did not settle it, CP-SAT minimises the peak on the clique
   model for the remaining time, warm-started from the best plan, and reports its bound.
4. **Report.** The best plan found, the best proven bound, the gap between them, and a status:
   ``OPTIMAL`` (proven minimal), ``FEASIBLE`` (a plan, not proven minimal; in the decision
   problem: it fits the capacity), ``INFEASIBLE`` (proven: nothing fits the capacity; the best
   plan found is returned anyway) or ``UNKNOWN`` (decision problem, time ran out with nothing
   that fits). ``optimal`` is True only for proven-minimal plans.

Gaps and fixed offsets: the search handles neither, so such problems go to CP-SAT alone (the
clique model over the parts in use, fixed offsets as constants); every time limit is kept.
``deterministic=True`` replaces every clock by work (search nodes, CP-SAT deterministic time,
CP-SAT's deterministic parallel mode), sized from ``time_limit``, so the plan depends only on
the problem, the seed, the limit and the worker count; the clock stays as a guard
(``options["cut_by_clock"]`` says when it fired). ``plan_cpsat`` keeps plain CP-SAT alone.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 8)))
>>> plan = plan_exact(p, time_limit=5)
>>> plan.arena_bytes, plan.optimal, plan.status
(12, True, 'OPTIMAL')
"""

from __future__ import annotations

import time

import numpy as np

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets.exact_clique import best_bound, clique_model, solve_clique
from trainplan.planner.offsets.exact_common import (
    DTIME_PER_SECOND,
    Scaled,
    greedy_warm_start,
    make_plan,
    scale,
    settled,
)
from trainplan.planner.offsets.exact_portfolio import decide_height
from trainplan.planner.offsets.exact_search import EXHAUSTED, FOUND
from trainplan.planner.plan import Plan

# Deterministic mode turns seconds into work, measured on a 2-core machine with nothing else
# running: a first portfolio round (both sides) takes about a second and each round doubles the
# work of the one before; CP-SAT gets ``exact_common.DTIME_PER_SECOND``. The budgets leave a
# margin (ROUND_SECONDS above the measured second, 40 % of the limit for minimising) so that the
# clock, which stays as a guard, rarely cuts the work on a machine that is busy too.
ROUND_SECONDS = 1.5
MAX_HEIGHTS = 16  # deterministic mode: heights tried up from the bound before minimising


def plan_exact(
    problem: AllocationProblem, *, time_limit: float = 10.0, seed: int = 0, workers: int = 2,
    deterministic: bool = False,
) -> Plan:
    """Optimal offsets with a proof, or the best plan and bound found in ``time_limit`` s."""
    started = time.perf_counter()
    options = {"time_limit": time_limit, "seed": seed, "workers": workers,
               "deterministic": deterministic}
    s = scale(problem)
    hint, _ = greedy_warm_start(s)
    done = settled(s, hint)
    if done is not None:
        return make_plan(s, "exact", hint, started, options=options, **done)
    deadline = started + time_limit
    run = _Run(s, hint, started, deadline, seed, max(1, workers), deterministic)
    if s.capacity is not None:
        fields = run.decide()
    else:
        fields = run.minimise()
    options["cut_by_clock"] = run.cut_by_clock
    return make_plan(s, "exact", run.best, started, options=options, **fields)


class _Run:
    """The state of one exact run: incumbent, proven bound, clocks and budgets."""

    def __init__(self, s: Scaled, hint: np.ndarray, started: float, deadline: float, seed: int,
                 workers: int, deterministic: bool):
        self.s, self.best, self.bound = s, hint, s.bound
        self.started, self.deadline, self.seed = started, deadline, seed
        self.workers, self.deterministic = workers, deterministic
        limit = deadline - started
        # deterministic budgets from the limit alone: rounds whose work adds up to the time
        # (half of it when minimising), CP-SAT deterministic time for the other half
        share = limit if s.capacity is not None else limit / 2
        self.rounds = max(1, int(np.log2(1 + share / ROUND_SECONDS)))
        self.cpsat_work = 0.4 * limit * DTIME_PER_SECOND
        self.cut_by_clock = False

    def decide(self) -> dict:
        """The decision problem at the capacity."""
        out = self._height(self.s.capacity, self.deadline)
        if out.result == FOUND:
            self.best = out.offsets
            optimal = self.s.height(self.best) <= self.bound
            return {"optimal": optimal, "status": "OPTIMAL" if optimal else "FEASIBLE",
                    "best_bound": self.bound}
        if out.result == EXHAUSTED:
            return {"optimal": False, "status": "INFEASIBLE", "best_bound": self.s.capacity + 1}
        return {"optimal": False, "status": "UNKNOWN", "best_bound": self.bound}

    def minimise(self) -> dict:
        """Heights up from the bound for half the time, then CP-SAT minimises the rest."""
        half = self.started + (self.deadline - self.started) / 2
        tried = 0
        while self.bound < self.s.height(self.best):
            if time.perf_counter() >= half:
                self.cut_by_clock = self.deterministic
                break
            if self.deterministic and tried >= MAX_HEIGHTS:
                break
            tried += 1
            out = self._height(self.bound, half)
            if out.result == FOUND:
                self.best = out.offsets
            elif out.result == EXHAUSTED:
                self.bound += 1  # proven: nothing fits at this height
            else:
                break
        if self.bound < self.s.height(self.best):
            self._cpsat_minimise()
        optimal = self.s.height(self.best) <= self.bound
        return {"optimal": optimal, "status": "OPTIMAL" if optimal else "FEASIBLE",
                "best_bound": self.bound}

    def _height(self, height: int, deadline: float):
        out = decide_height(self.s, height, deadline=deadline, seed=self.seed,
                            workers=self.workers, deterministic=self.deterministic,
                            budget_rounds=self.rounds if self.deterministic else None)
        self.cut_by_clock = self.cut_by_clock or out.cut_by_clock
        return out

    def _cpsat_minimise(self) -> None:
        from ortools.sat.python import cp_model

        remaining = self.deadline - time.perf_counter()
        if remaining <= 0.01:
            return
        built = clique_model(self.s, self.s.height(self.best), minimize=True, hint=self.best)
        built.model.add(built.peak >= self.bound)
        solver = cp_model.CpSolver()
        dtime = None
        if self.deterministic:
            dtime = self.cpsat_work
            solver.parameters.interleave_search = True
        status, offsets = solve_clique(built, time_limit=remaining, seed=self.seed,
                                       workers=self.workers, deterministic_time=dtime,
                                       solver=solver)
        if offsets is not None and self.s.height(offsets) < self.s.height(self.best):
            self.best = offsets
        if status == "OPTIMAL":
            self.bound = max(self.bound, self.s.height(self.best))
        elif status == "FEASIBLE":
            self.bound = max(self.bound, min(best_bound(solver), self.s.height(self.best)))
        if self.deterministic and time.perf_counter() > self.deadline:
            self.cut_by_clock = True
