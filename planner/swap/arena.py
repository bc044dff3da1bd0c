"""Residency-aware offsets: every resident piece of a buffer is a buffer of an allocation
problem, so any offset planner places the arena under swapping.

A piece keeps the buffer's bytes at one offset from the EO it arrives (created or prefetched)
to the EO it leaves; two pieces of one buffer may sit at different offsets since the bytes
went through storage in between. Pieces are identified by ``(buffer, index)``; the allocation
problem's string ids are made once here and mapped back through a table, never parsed.
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

PieceKey = tuple[str, int]  # (buffer, index of its resident piece)


def swap_problem(schedule: SwapSchedule, buffers: dict[str, BufferUses], alignment: int = 1
                 ) -> tuple[AllocationProblem, dict[str, PieceKey]]:
    """One allocation buffer per resident piece (kind = the buffer's role, every offset a
    multiple of ``alignment``), and the table from its id back to ``(buffer, index)``."""
    out, keys = [], {}
    for t, pieces in schedule.resident.items():
        for i, (a, z) in enumerate(pieces):
            ident = f"{len(out)}"
            keys[ident] = (t, i)
            out.append(Buffer(ident, a, z, schedule.sizes[t], alignment, buffers[t].role))
    return AllocationProblem(tuple(out), name="swap-arena"), keys


@dataclass(frozen=True)
class SwapArena:
    """A swap schedule and the offsets of its pieces, the arena within the budget.

    ``offsets[(buffer, i)]`` is piece i's offset; ``fallbacks`` says which schedules were
    tried before this one and why.
    """

    schedule: SwapSchedule
    problem: AllocationProblem
    plan: Plan
    offsets: dict[PieceKey, int]
    errors: tuple[str, ...]
    attempts: int
    fallbacks: tuple[str, ...] = ()


GREEDY = ("greedy_size", "best_fit", "greedy_breadth")


def place_pieces(schedule: SwapSchedule, buffers: dict[str, BufferUses], offsets: str,
                 alignment: int, options: dict) -> SwapArena:
    """Offsets for the resident pieces of ``schedule`` by ``offsets`` (``best``: the smallest
    arena of the greedy planners), validated as an allocation problem."""
    problem, keys = swap_problem(schedule, buffers, alignment)
    plan = _place(problem, offsets, options)
    return SwapArena(schedule, problem, plan, {keys[k]: v for k, v in plan.offsets.items()},
                     tuple(validate_plan(problem, plan)), 1)


def plan_swap_arena(buffers: dict[str, BufferUses], n_eo: int, budget: int, *,
                    swap: str = "belady", offsets: str = "best", alignment: int = 1,
                    floor: int | None = None, **options) -> SwapArena:
    """Plan the swap under ``budget`` and place its pieces (``offsets="best"``: the smallest
    arena of the greedy planners). Fragmentation can push the arena over the budget; then the
    swap is planned again for a smaller budget (by the ratio the arena overshot), and finally
    (belady, and optimal falling back on it) with every gap left — short pieces that pack —
    prefetching early only within what still packs. The lookahead schedule ignores the budget,
    so when its pieces do not pack Infeasible gives the arena they need. ``floor``: the minimum
    budget, when the caller knows it."""
    floor = min_budget(buffers, n_eo) if floor is None else floor
    tries = [(budget, swap, options)]
    attempt, last, fallbacks = 0, None, []
    while tries:
        target, planner, opts = tries.pop(0)
        attempt += 1
        schedule = plan_swap(buffers, n_eo, target, planner, floor=floor, **opts)
        problem, keys = swap_problem(schedule, buffers, alignment)
        plan = _place(problem, offsets, options)
        if plan.arena_bytes > budget and planner == "lookahead":
            # its schedule ignores the budget: planning again for less changes nothing
            raise Infeasible(f"lookahead's resident pieces pack into {plan.arena_bytes:,} "
                             f"bytes, over the budget {budget:,}; give at least "
                             f"{plan.arena_bytes:,} bytes or use the belady swap planner",
                             plan.arena_bytes)
        if plan.arena_bytes <= budget:
            errors = tuple(validate_plan(problem, plan))
            return SwapArena(replace(schedule, budget_bytes=budget), problem, plan,
                             {keys[k]: v for k, v in plan.offsets.items()}, errors, attempt,
                             tuple(fallbacks))
        last = plan.arena_bytes
        fallbacks.append(f"{_label(planner, opts)} for {target:,} B: pieces pack into "
                         f"{plan.arena_bytes:,} B, over the budget")
        if not tries and swap == "optimal" and planner == "optimal":
            best = _best_fallback(buffers, n_eo, budget, offsets, alignment, floor, options,
                                  attempt)
            return replace(best, fallbacks=tuple(fallbacks) + best.fallbacks)
        if not tries:
            tries = _next_tries(planner, budget, target, plan.arena_bytes, floor, opts,
                                options)
    raise Infeasible(f"offsets for the swap schedule need {last} bytes, over the budget "
                     f"{budget}; raise the budget", last)


def _label(planner: str, opts: dict) -> str:
    if opts.get("evict_all"):
        return f"{planner} evicting in every gap" + ("" if opts.get("early", True)
                                                      else ", prefetching just in time")
    return planner


def _next_tries(swap, budget, target, arena, floor, opts, options) -> list:
    # the arena grows about in proportion to the schedule's budget: aim where it would fit
    shrunk = min(target - 1, target * budget // arena * 49 // 50)
    if shrunk >= floor:
        return [(shrunk, swap, opts)]
    if swap != "lookahead" and not opts.get("evict_all"):
        spread = sorted({budget - (budget - floor) * f // 4 for f in range(5)}, reverse=True)
        return [(b, "belady", {**options, "evict_all": True}) for b in spread] + \
            [(budget, "belady", {**options, "evict_all": True, "early": False})]
    return []


def _best_fallback(buffers, n_eo: int, budget: int, offsets: str, alignment: int, floor: int,
                   options: dict, attempt: int) -> SwapArena:
    """When optimal's schedules do not pack into the budget: the least-stall (by the same
    stall model) of the heuristics' schedules that do."""
    found, needed = [], []
    for swap, extra in (("lookahead", {"lookahead": 1}), ("lookahead", {"lookahead": 2}),
                        ("lookahead", {"lookahead": 0}), ("belady", {})):
        try:
            found.append(plan_swap_arena(buffers, n_eo, budget, swap=swap, offsets=offsets,
                                         alignment=alignment, floor=floor,
                                         **{**options, **extra}))
        except Infeasible as exc:
            needed.append(exc.needed_bytes)
    if not found:
        least = min(needed)
        raise Infeasible(f"no swap schedule packs into the budget {budget:,} bytes; the "
                         f"smallest arena found needs {least:,}: raise the budget", least)
    steps, storage = options.get("step_seconds"), options.get("storage")
    best = min(found, key=lambda f: (estimate_stall(f.schedule, steps, storage),
                                     f.schedule.bytes_read + f.schedule.bytes_written))
    info = {"source": best.schedule.planner, "proven": False}
    schedule = replace(best.schedule, planner="optimal",
                       options={**best.schedule.options, **info})
    note = f"optimal's schedules do not pack; the least-stall heuristic that does: " \
           f"{best.schedule.planner}"
    return replace(best, schedule=schedule, attempts=attempt + best.attempts,
                   fallbacks=best.fallbacks + (note,))


def _place(problem: AllocationProblem, offsets: str, options: dict) -> Plan:
    names = GREEDY if offsets == "best" else (offsets,)
    return min((run_planner(n, problem, **_search(options)) for n in names),
               key=lambda p: p.arena_bytes)


def _search(options: dict) -> dict:
    return {k: options[k] for k in ("time_limit", "seed", "workers", "deterministic")
            if options.get(k) is not None}
