"""Swap planners under a RAM budget, one registry: ``SWAP_PLANNERS[name]``.

``plan_swap`` runs one on a training graph and returns its SwapSchedule; every planner returns
gap choices (planner/swap/schedule.py) so the transfers and resident pieces are derived the
same way for all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import networkx as nx

from trainplan.planner.errors import Infeasible, UnknownName
from trainplan.planner.order import ExecutionOrder, execution_order, lifespans
from trainplan.planner.swap.belady import belady_gaps
from trainplan.planner.swap.lookahead import lookahead_gaps
from trainplan.planner.swap.schedule import SwapSchedule, build_schedule
from trainplan.planner.swap.uses import BufferUses, buffer_uses
from trainplan.planner.swap.working_set import min_budget


@dataclass(frozen=True)
class SwapPlannerSpec:
    function: Callable[..., list]
    description: str


def _lookahead(buffers, n_eo, budget, *, lookahead=1, **_):
    return lookahead_gaps(buffers, n_eo, lookahead)


def _belady(buffers, n_eo, budget, *, evict_all=False, early=True, floor=None, **_):
    return belady_gaps(buffers, n_eo, budget, evict_all=evict_all, early=early, floor=floor)


def _optimal(buffers, n_eo, budget, *, step_seconds=None, storage=None, time_limit=10.0, seed=0,
             workers=2, floor=None, deterministic=False, **_):
    from trainplan.planner.swap.optimal import SolvedGaps, optimal_gaps  # loads OR-Tools
    return SolvedGaps(*optimal_gaps(buffers, n_eo, budget, step_seconds=step_seconds,
                                    storage=storage, time_limit=time_limit, seed=seed,
                                    workers=workers, floor=floor, deterministic=deterministic))


SWAP_PLANNERS: dict[str, SwapPlannerSpec] = {
    "lookahead": SwapPlannerSpec(_lookahead, "NNTrainer's proactive swap: everything out "
                                 "unless the next k EOs need it, prefetch k EOs ahead"),
    "belady": SwapPlannerSpec(_belady, "evict the buffer used furthest ahead, prefetch as "
                              "early as the budget allows"),
    "optimal": SwapPlannerSpec(_optimal, "CP-SAT: least stall under the budget, then fewest "
                               "bytes moved; warm-started from the best heuristic"),
}


def graph_buffers(graph: nx.DiGraph, order: str | ExecutionOrder = "nntrainer"
                  ) -> tuple[dict[str, BufferUses], int]:
    eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
    return buffer_uses(graph, eo, lifespans(graph, eo)), eo.n_eo


def plan_swap(buffers: dict[str, BufferUses], n_eo: int, budget: int, planner: str = "belady",
              **options) -> SwapSchedule:
    """Run a swap planner; Infeasible gives the minimum budget when ``budget`` is too small."""
    if planner not in SWAP_PLANNERS:
        raise UnknownName(f"unknown swap planner {planner!r}; valid: "
                          + ", ".join(SWAP_PLANNERS))
    began = time.perf_counter()
    gaps = SWAP_PLANNERS[planner].function(buffers, n_eo, budget, **options)
    kept = {k: v for k, v in options.items() if k not in ("storage", "step_seconds", "floor")}
    schedule = build_schedule(planner, buffers, gaps, n_eo, budget,
                              {**kept, **getattr(gaps, "info", {})})
    if schedule.peak_resident_bytes > budget:
        window = options.get("lookahead", 0) if planner == "lookahead" else 0
        need = max(schedule.peak_resident_bytes if planner == "lookahead" else 0,
                   min_budget(buffers, n_eo, window))
        raise Infeasible(f"budget {budget} bytes is below the minimum feasible budget for "
                         f"{planner}: needs at least {need} bytes", need)
    seconds = time.perf_counter() - began
    return replace(schedule, options={**schedule.options, "solve_seconds": seconds})
