"""Recomputation planners, one registry: ``REMAT_PLANNERS[name]``.

A planner decides which forward ops run again, and at which EO, so that what they wrote can
leave RAM after its last forward use and come back by computation instead of staying resident
or going through storage. It returns replays ``(op, EO)``; planner/plan_training.py derives the
uses, lifespans and pieces that follow from them, and the validator checks that every replay
recomputes exactly the values the plain iteration had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx

from trainplan.planner.errors import UnknownName
from trainplan.planner.order import ExecutionOrder
from trainplan.planner.remat.greedy import plan_greedy
from trainplan.planner.remat.groups import Group, candidate_groups
from trainplan.planner.remat.sqrt import plan_sqrt


@dataclass(frozen=True)
class RematPlannerSpec:
    function: Callable[..., list[tuple[str, int]]]
    description: str


def _none(graph, eo, groups, **_) -> list[tuple[str, int]]:
    return []


def _optimal(graph, eo, groups, **options) -> list[tuple[str, int]]:
    from trainplan.planner.remat.optimal import plan_optimal_remat  # loads OR-Tools
    return plan_optimal_remat(graph, eo, groups, **options)


REMAT_PLANNERS: dict[str, RematPlannerSpec] = {
    "none": RematPlannerSpec(_none, "keep every value until its last use"),
    "sqrt": RematPlannerSpec(plan_sqrt, "Chen et al.'s √n segments: keep segment outputs, "
                             "recompute inside a segment before its backward"),
    "greedy": RematPlannerSpec(plan_greedy, "recompute what is cheapest per byte freed until "
                               "live bytes fit the budget"),
    "optimal": RematPlannerSpec(_optimal, "CP-SAT: least recomputation under the budget, each "
                                "value's retention as intervals (MOCCASIN-style)"),
}


def plan_remat(name: str, graph: nx.DiGraph, eo: ExecutionOrder, *,
               op_cost: dict[str, float] | None = None, **options
               ) -> tuple[list[tuple[str, int]], dict]:
    """Run a remat planner: its replays and a report (candidates, replays, cost, solver info)."""
    if name not in REMAT_PLANNERS:
        raise UnknownName(f"unknown remat planner {name!r}; valid: "
                          + ", ".join(REMAT_PLANNERS))
    groups = candidate_groups(graph, eo, op_cost)
    info: dict = {"candidates": len(groups)}
    replays = REMAT_PLANNERS[name].function(graph, eo, groups, info=info, **options)
    cost = {op: c for g in groups for op, c in _op_costs(graph, g, op_cost)}
    info.update(replayed_ops=len(replays), replay_cost=sum(cost[op] for op, _ in replays),
                cost_unit="seconds" if op_cost else "flops")
    return replays, info


def _op_costs(graph: nx.DiGraph, g: Group, op_cost: dict[str, float] | None):
    return [(op, (op_cost or {}).get(op, float(graph.nodes[op]["flops"])))
            for op in g.forward_ops]
