"""Plan a training graph: its weight pool and its tensor pool, each with an offset planner.

NNTrainer plans two pools: weights and optimizer state (live over the whole iteration) and
everything else. The record it returns is what ``trainplan plan`` and ``compare`` print.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from trainplan.planner.offsets import run_planner
from trainplan.planner.order import execution_order, lifespans, lower_bound
from trainplan.planner.plan import Plan
from trainplan.planner.problems import graph_problems
from trainplan.planner.swap.arena import SwapArena, plan_swap_arena
from trainplan.planner.swap.uses import buffer_uses
from trainplan.planner.swap.working_set import min_budget
from trainplan.planner.validate import validate_plan
from trainplan.planner.validate_swap import validate_swap


@dataclass(frozen=True)
class GraphPlan:
    """The two pools' plans and whether both passed the independent validator."""

    model: str
    planner: str
    weight: Plan
    tensor: Plan
    valid: bool
    errors: tuple[str, ...] = ()

    def record(self) -> dict:
        arena = self.weight.arena_bytes + self.tensor.arena_bytes
        bound = self.weight.lower_bound_bytes + self.tensor.lower_bound_bytes
        proofs = [self.weight.optimal, self.tensor.optimal]
        optimal = None if None in proofs else all(proofs)
        return {
            "model": self.model,
            "planner": self.planner,
            "arena_bytes": arena,
            "lower_bound_bytes": bound,
            "ratio": round(arena / bound, 6) if bound else 1.0,
            "solve_seconds": round(self.weight.solve_seconds + self.tensor.solve_seconds, 6),
            "optimal": optimal,
            "valid": self.valid,
            "weight_pool_bytes": self.weight.arena_bytes,
            "tensor_pool_bytes": self.tensor.arena_bytes,
            "status": self.tensor.status,
        }


def plan_graph(graph: nx.DiGraph, planner: str, *, order: str = "nntrainer",
               time_limit: float | None = None, seed: int = 0, workers: int = 2,
               alignment: int = 1) -> GraphPlan:
    """Plan both pools of ``graph`` with ``planner`` and validate both plans (``alignment``:
    every buffer's offset a multiple of it, e.g. 64 for the runtime's SIMD-friendly arena)."""
    problems = graph_problems(graph, order, alignment)
    plans, errors = {}, []
    for pool, problem in problems.items():
        plans[pool] = run_planner(planner, problem, time_limit=time_limit, seed=seed,
                                  workers=workers)
        errors += [f"{pool} pool: {e}" for e in validate_plan(problem, plans[pool])]
    return GraphPlan(graph.graph["model"], planner, plans["weight"], plans["tensor"],
                     not errors, tuple(errors))


@dataclass(frozen=True)
class GraphSwapPlan:
    """A graph planned under a RAM budget: swap schedule, piece offsets, validity."""

    model: str
    swap: str
    arena: SwapArena
    lower_bound_bytes: int
    min_budget_bytes: int
    valid: bool
    errors: tuple[str, ...]

    def record(self) -> dict:
        s, plan = self.arena.schedule, self.arena.plan
        return {
            "model": self.model,
            "planner": plan.planner,
            "swap": self.swap,
            "budget_bytes": s.budget_bytes,
            "arena_bytes": plan.arena_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "peak_resident_bytes": s.peak_resident_bytes,
            "min_budget_bytes": self.min_budget_bytes,
            "bytes_written": s.bytes_written,
            "bytes_read": s.bytes_read,
            "evictions": len(s.evictions),
            "prefetches": len(s.prefetches),
            "solve_seconds": round(s.options.get("solve_seconds", 0.0)
                                   + plan.solve_seconds, 6),
            "valid": self.valid,
        }


def plan_graph_swap(graph: nx.DiGraph, budget: int, *, swap: str = "belady",
                    planner: str = "best", order: str = "nntrainer",
                    **options) -> GraphSwapPlan:
    """Plan ``graph`` to fit ``budget`` bytes of RAM with swapping; validate the schedule and
    the offsets of its pieces."""
    eo = execution_order(graph, order)
    spans = lifespans(graph, eo)
    buffers, n_eo = buffer_uses(graph, eo, spans), eo.n_eo
    window = options.get("lookahead", 1) if swap == "lookahead" else 0
    arena = plan_swap_arena(buffers, n_eo, budget, swap=swap, offsets=planner, **options)
    errors = arena.errors + tuple(validate_swap(buffers, arena.schedule))
    return GraphSwapPlan(graph.graph["model"], swap, arena,
                         lower_bound(spans, n_eo),
                         min_budget(buffers, n_eo, window), not errors, errors)
