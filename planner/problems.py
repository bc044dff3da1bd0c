"""Training graph -> allocation problems, one per memory pool, as NNTrainer plans them."""

from __future__ import annotations

import networkx as nx

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.order import ExecutionOrder, Lifespan, execution_order, lifespans


def problem_from_lifespans(spans: dict[str, Lifespan], pool: str = "tensor",
                           name: str = "", alignment: int = 1) -> AllocationProblem:
    """Buffers of one pool, in the order the tensors were requested (graph order)."""
    buffers = tuple(Buffer(s.tensor, s.start, s.end, s.nbytes, alignment, s.role)
                    for s in spans.values() if s.pool == pool)
    return AllocationProblem(buffers, name=name)


def graph_problems(graph: nx.DiGraph, order: str | ExecutionOrder = "nntrainer",
                   alignment: int = 1) -> dict[str, AllocationProblem]:
    """``{"weight": ..., "tensor": ...}`` allocation problems of ``graph`` under ``order``."""
    eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
    spans = lifespans(graph, eo)
    model = graph.graph.get("model", "")
    return {pool: problem_from_lifespans(spans, pool, f"{model}:{pool}", alignment)
            for pool in ("weight", "tensor")}
