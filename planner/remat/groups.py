"""What recomputation can run again: groups of layers sharing bytes in place, and whether a
group's forward ops can be replayed at a later EO with the same results.

Layers that run in place (batch norm and an activation overwriting a convolution's output, a
reshape viewing it) share one buffer, so they are recomputed together, in forward order: the
first op rewrites the buffer from its inputs and the others bring it back to its final forward
value. A group is a candidate when it is neither the data input nor a loss, has backward work
that needs what it wrote, and reads only values that stay unchanged after its forward (the
final forward version of every input; weights are updated only after its backward).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from trainplan.planner.graph import alias_root, replay_edges
from trainplan.planner.layers.base import F
from trainplan.planner.order import ExecutionOrder


@dataclass(frozen=True)
class Group:
    """Layers sharing bytes in place, their forward ops in order, the buffers (alias roots)
    those ops write, the first EO of backward work on those buffers or the group's layers,
    and the cost of running the ops again (seconds on a device, or flops)."""

    layers: tuple[str, ...]
    forward_ops: tuple[str, ...]
    writes: frozenset[str]
    reads: frozenset[str]
    backward_eo: int
    cost: float


def inplace_groups(graph: nx.DiGraph) -> list[tuple[str, ...]]:
    """Layers joined by in-place execution (an output sharing its input's bytes), in
    topological order of their first layer."""
    layers = graph.graph["layers"]
    parent = {x["name"]: x["name"] for x in layers}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    for x in layers:
        if x["inplace"] != "none" and x["inputs"] and not x["placeholder"]:
            parent[find(x["name"])] = find(x["inputs"][0][0])
    groups: dict[str, list[str]] = {}
    for x in layers:
        groups.setdefault(find(x["name"]), []).append(x["name"])
    return sorted((tuple(g) for g in groups.values()),
                  key=lambda g: next(i for i, x in enumerate(layers) if x["name"] == g[0]))


def candidate_groups(graph: nx.DiGraph, eo: ExecutionOrder,
                     op_cost: dict[str, float] | None = None) -> list[Group]:
    """Groups whose forward ops can run again at their first backward EO with the same
    results, in topological order; ``op_cost`` prices an op (default: its flops)."""
    records = {x["name"]: x for x in graph.graph["layers"]}
    position = _forward_positions(graph, eo)
    last_writer = _last_forward_writer(graph, position)
    out = []
    for layers in inplace_groups(graph):
        if any(records[n]["placeholder"] or records[n]["is_loss"] for n in layers):
            continue
        ops = tuple(op for n in layers if (op := f"{n}:{F}") in graph
                    and graph.nodes[op]["step"] == F)
        if not ops:
            continue
        writes, reads = set(), set()
        for op in ops:
            r, w = replay_edges(graph, op)
            writes.update(alias_root(graph, t) for t in w)
            reads.update(alias_root(graph, t) for t in r)
        outside = reads - writes
        if any(position[last_writer[c]] > position[ops[0]] for c in outside
               if c in last_writer and graph.nodes[c]["pool"] != "weight"):
            continue  # an input is overwritten after the group read it
        backward = _first_backward_use(graph, eo, writes, layers)
        if backward is None:
            continue
        cost = sum((op_cost or {}).get(op, float(graph.nodes[op]["flops"])) for op in ops)
        out.append(Group(tuple(layers), ops, frozenset(writes), frozenset(outside), backward,
                         cost))
    return out


def _forward_positions(graph: nx.DiGraph, eo: ExecutionOrder) -> dict[str, tuple[int, int]]:
    rank = {"forward": 0, "calc_gradient": 1, "calc_derivative": 2, "apply_gradient": 3}
    return {op: (e, rank[graph.nodes[op]["step"]]) for op, e in eo.op_eo.items()}


def _last_forward_writer(graph: nx.DiGraph, position: dict) -> dict[str, str]:
    """Alias root -> the last forward op writing its bytes."""
    out: dict[str, str] = {}
    for op, pos in sorted(position.items(), key=lambda kv: kv[1]):
        if graph.nodes[op]["step"] == F:
            for t in graph.successors(op):
                out[alias_root(graph, t)] = op
    return out


def _first_backward_use(graph: nx.DiGraph, eo: ExecutionOrder, writes: set[str],
                        layers: tuple[str, ...]) -> int | None:
    """The first EO of a non-forward op touching the buffers or belonging to the layers."""
    mine = set(layers)
    eos = [e for op, e in eo.op_eo.items() if graph.nodes[op]["step"] != F and (
        graph.nodes[op]["layer"] in mine
        or any(alias_root(graph, t) in writes
               for t in (*graph.predecessors(op), *graph.successors(op))))]
    return min(eos, default=None)
