"""Residency-aware offsets: every resident piece of a buffer is a buffer of an allocation
problem, so any offset planner places the arena under swapping.

A piece keeps the buffer's bytes at one offset from the EO it arrives (created or prefetched)
to the EO it leaves; two pieces of one buffer may sit at different offsets since the bytes
went through storage in between.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.errors import Infeasible
from trainplan.planner.offsets import run_planner
from trainplan.planner.plan import Plan
from trainplan.planner.swap import SwapSchedule, plan_swap
from trainplan.planner.swap.stall_model import estimate_stall
from trainplan.planner.swap.uses import BufferUses
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.validate import validate_plan


def piece_id(tensor: str, i: int) -> str:
    return f"{tensor}#{i}"


def swap_problem(schedule: SwapSchedule, buffers: dict[str, BufferUses]) -> AllocationProblem:
    """One buffer per resident piece, kind = the buffer's role."""
    out = []
    for t, pieces in schedule.resident.items():
        for i, (a, z) in enumerate(pieces):
            out.append(Buffer(piece_id(t, i), a, z, schedule.sizes[t], 1, buffers[t].role))
    return AllocationProblem(tuple(out), name="swap-arena")


@dataclass(frozen=True)
class SwapArena:
    """A swap schedule and the offsets of its pieces, the arena within the budget."""

    schedule: SwapSchedule
    problem: AllocationProblem
    plan: Plan
    errors: tuple[str, ...]
    attempts: int


GREEDY = ("greedy_size", "best_fit", "greedy_breadth")


def plan_swap_arena(buffers: dict[str, BufferUses], n_eo: int, budget: int, *,
                    swap: str = "belady", offsets: str = "best", **options) -> SwapArena:
    """Plan the swap under ``budget`` and place its pieces (``offsets="best"``: the smallest
    arena of the greedy planners). Fragmentation can push the arena over the budget; then the
    swap is planned again for a smaller budget (twice the excess less each time), and finally
    (belady, and optimal falling back on it) with every gap left — short pieces that pack —
    prefetching early only within what still packs."""
    floor = min_budget(buffers, n_eo)
    tries = [(budget, swap, options)]
    attempt, last = 0, None
    while tries:
        target, planner, opts = tries.pop(0)
        attempt += 1
        schedule = plan_swap(buffers, n_eo, target, planner, **opts)
        problem = swap_problem(schedule, buffers)
        plan = _place(problem, offsets, options)
        if plan.arena_bytes <= budget or swap == "lookahead":
            errors = tuple(validate_plan(problem, plan))
            if plan.arena_bytes > budget:
                errors += (f"arena {plan.arena_bytes} bytes exceeds the budget {budget}",)
            return SwapArena(replace(schedule, budget_bytes=budget), problem, plan, errors,
                             attempt)
        last = plan.arena_bytes
        if not tries and swap == "optimal" and planner == "optimal":
            return _best_fallback(buffers, n_eo, budget, offsets, options, attempt)
        if not tries:
            tries = _next_tries(planner, budget, target, plan.arena_bytes, floor, opts,
                                options)
    raise Infeasible(f"offsets for the swap schedule need {last} bytes, over the budget "
                     f"{budget}; raise the budget", last)


def _next_tries(swap, budget, target, arena, floor, opts, options) -> list:
    shrunk = budget - 2 * (budget - target + arena - budget)
    if shrunk >= floor:
        return [(shrunk, swap, opts)]
    if swap != "lookahead" and not opts.get("evict_all"):
        spread = [budget - (budget - floor) * f // 4 for f in range(5)]
        return [(b, "belady", {**options, "evict_all": True}) for b in spread] + \
            [(budget, "belady", {**options, "evict_all": True, "early": False})]
    return []


def _best_fallback(buffers, n_eo: int, budget: int, offsets: str, options: dict,
                   attempt: int) -> SwapArena:
    """When optimal's schedules do not pack into the budget: the least-stall (by the same
    stall model) of the heuristics' schedules that do."""
    found = []
    for k in (1, 2, 0):
        try:
            found.append(plan_swap_arena(buffers, n_eo, budget, swap="lookahead",
                                         offsets=offsets, **{**options, "lookahead": k}))
        except Infeasible:
            pass
    try:
        found.append(plan_swap_arena(buffers, n_eo, budget, swap="belady", offsets=offsets,
                                     **options))
    except Infeasible:
        pass
    found = [f for f in found if f.plan.arena_bytes <= budget]
    if not found:
        raise Infeasible(f"no swap schedule packs into the budget {budget}; raise it", budget)
    steps, storage = options.get("step_seconds"), options.get("storage")
    best = min(found, key=lambda f: (estimate_stall(f.schedule, steps, storage),
                                     f.schedule.bytes_read + f.schedule.bytes_written))
    info = {"source": best.schedule.planner, "proven": False}
    schedule = replace(best.schedule, planner="optimal",
                       options={**best.schedule.options, **info})
    return replace(best, schedule=schedule, attempts=attempt + best.attempts)


def _place(problem: AllocationProblem, offsets: str, options: dict) -> Plan:
    names = GREEDY if offsets == "best" else (offsets,)
    return min((run_planner(n, problem, **_search(options)) for n in names),
               key=lambda p: p.arena_bytes)


def _search(options: dict) -> dict:
    return {k: options[k] for k in ("time_limit", "seed") if k in options}
