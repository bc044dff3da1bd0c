"""One-line facts about a training graph: sizes, parameters, bytes by role, bounds."""

from __future__ import annotations

import networkx as nx

from trainplan.planner.graph import ops, tensors
from trainplan.planner.order import (
    ExecutionOrder,
    execution_order,
    lifespans,
    lower_bound,
    no_reuse_bytes,
)


def parameter_count(graph: nx.DiGraph) -> int:
    """Learnable weight elements (running statistics excluded), as published counts count."""
    return sum(_elements(graph, t) for t in tensors(graph)
               if graph.nodes[t]["role"] == "weight" and graph.nodes[t]["alias"] is None
               and graph.nodes[t].get("learnable", True))


def _elements(graph: nx.DiGraph, t: str) -> int:
    n = 1
    for d in graph.nodes[t]["shape"]:
        n *= d
    return n


def graph_summary(graph: nx.DiGraph, order: str | ExecutionOrder = "nntrainer") -> dict:
    """The facts ``trainplan graph`` prints, as a JSON-ready dict."""
    eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
    spans = lifespans(graph, eo)
    by_role: dict[str, int] = {}
    for s in spans.values():
        if s.pool != "external":
            by_role[s.role] = by_role.get(s.role, 0) + s.nbytes
    return {
        "model": graph.graph["model"],
        "batch": graph.graph["batch"],
        "optimizer": graph.graph["optimizer"],
        "order": eo.name,
        "layers": len(graph.graph["layers"]),
        "ops": sum(1 for _ in ops(graph)),
        "tensors": sum(1 for _ in tensors(graph)),
        "buffers": sum(1 for s in spans.values() if s.pool != "external"),
        "parameters": parameter_count(graph),
        "bytes_by_role": dict(sorted(by_role.items())),
        "no_reuse_bytes": no_reuse_bytes(spans),
        "lower_bound_bytes": lower_bound(spans, eo.n_eo),
        "weight_pool_lower_bound_bytes": no_reuse_bytes(spans, ("weight",)),
        "tensor_pool_lower_bound_bytes": lower_bound(spans, eo.n_eo, ("tensor",)),
        "n_eo": eo.n_eo,
    }
