"""The one registry of offset planners: the CLI, sweeps and tests iterate it, never name planners.

Each planner is a pure function ``plan_<name>(problem, **options) -> Plan`` in its own module.
Adding one is an import and a row in ``PLANNERS``; a planner that searches (time limit, seed,
worker count) says so with ``searches=True`` and then receives those options from
``run_planner``, which also rejects unknown names and impossible capacities at the door and
times the call.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 4)))
>>> [run_planner(name, p).arena_bytes for name in ("basic", "greedy_size")]
[12, 8]
>>> run_planner("nope", p)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
trainplan.planner.errors.UnknownName: unknown planner 'nope'; valid names: basic, best_fit, ...
>>> run_planner("greedy_size", p.with_capacity(6))
Traceback (most recent call last):
...
trainplan.planner.errors.Infeasible: infeasible: needs at least 8 bytes (the lower bound); capacity is 6
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.errors import Infeasible, UnknownName
from trainplan.planner.offsets.basic import plan_basic
from trainplan.planner.offsets.best_fit import plan_best_fit
from trainplan.planner.offsets.exact import plan_exact
from trainplan.planner.offsets.exact_cpsat import plan_cpsat
from trainplan.planner.offsets.greedy import plan_greedy_breadth, plan_greedy_size
from trainplan.planner.offsets.nntrainer import (
    plan_nntrainer_v1,
    plan_nntrainer_v2,
    plan_nntrainer_v3,
)
from trainplan.planner.plan import Plan


@dataclass(frozen=True)
class PlannerSpec:
    """A registry row: the planner function, one line saying what it does, whether it searches.

    A planner with ``searches=True`` accepts the keyword arguments ``time_limit`` (seconds),
    ``seed``, ``workers`` and ``deterministic`` (work limits instead of the clock, so the plan
    does not depend on the machine's load); the others take the problem alone.
    """

    function: Callable[..., Plan]
    description: str
    searches: bool = False


PLANNERS: dict[str, PlannerSpec] = {
    "basic": PlannerSpec(plan_basic, "NNTrainer Basic: no reuse, sizes stacked in request order"),
    "best_fit": PlannerSpec(plan_best_fit, "by start time, best-fitting hole among live buffers"),
    "greedy_breadth": PlannerSpec(
        plan_greedy_breadth, "TFLite greedy by breadth: widest step first, best-fit gaps"
    ),
    "greedy_size": PlannerSpec(
        plan_greedy_size, "TFLite greedy by size: largest first, best-fit gaps"
    ),
    "nntrainer_v1": PlannerSpec(
        plan_nntrainer_v1, "NNTrainer OptimizedV1 (default): stack, exact-size reuse"
    ),
    "nntrainer_v2": PlannerSpec(
        plan_nntrainer_v2, "NNTrainer OptimizedV2: V1 plus weight gradients in shared slots"
    ),
    "nntrainer_v3": PlannerSpec(
        plan_nntrainer_v3, "NNTrainer OptimizedV3: first fit into gaps between live requests"
    ),
    "exact": PlannerSpec(
        plan_exact, "proven optimum: MiniMalloc-style search raced against CP-SAT", searches=True
    ),
    "cpsat": PlannerSpec(
        plan_cpsat, "plain CP-SAT NoOverlap2D model, greedy hint, for comparison", searches=True
    ),
}


def planner_names() -> list[str]:
    """Registered planner names, in registry order."""
    return list(PLANNERS)


def run_planner(
    name: str,
    problem: AllocationProblem,
    *,
    time_limit: float | None = None,
    seed: int = 0,
    workers: int = 2,
    deterministic: bool = False,
) -> Plan:
    """Run a registered planner and return its Plan with ``solve_seconds`` measured.

    Raises ``UnknownName`` (listing the valid names) for an unregistered name, and
    ``Infeasible`` without searching when the capacity is below the problem's lower bound.
    ``time_limit``/``seed``/``workers``/``deterministic`` reach only planners that search
    (``time_limit=None`` leaves the planner's own default). Greedy planners ignore the
    capacity: when their arena exceeds it, ``validate_plan`` says so.
    """
    spec = PLANNERS.get(name)
    if spec is None:
        raise UnknownName(f"unknown planner {name!r}; valid names: {', '.join(sorted(PLANNERS))}")
    bound = problem.lower_bound()
    if problem.capacity is not None and problem.capacity < bound:
        raise Infeasible(
            f"infeasible: needs at least {bound} bytes (the lower bound); "
            f"capacity is {problem.capacity}",
            needed_bytes=bound,
        )
    options: dict = {}
    if spec.searches:
        options = {"seed": seed, "workers": workers, "deterministic": deterministic}
        if time_limit is not None:
            options["time_limit"] = time_limit
    began = time.perf_counter()
    plan = spec.function(problem, **options)
    return dataclasses.replace(plan, solve_seconds=time.perf_counter() - began)
