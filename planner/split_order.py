"""Chunk-major execution orders for split graphs: each chunk runs as deep as it can.

NNTrainer's rule (planner/order.py) runs a split step layer by layer: all K chunks of one
layer, then all K chunks of the next, so every layer's whole output is made before the next
layer reads any of it, and under a small budget each chunk goes to storage and comes back
before it is read again. ``chunk_major(graph, order)`` keeps the rule's phases (the forward
pass, then the backward pass) but reorders the ops of each phase by a list schedule that
prefers the lowest chunk, then the layer order: chunk 0 runs through the region's layers
until a step needs the whole batch (batch norm's statistics before it normalises, its sums
before the input derivatives, a merge), then chunk 1 catches up, and so on. Ops that touch
the same bytes keep the order the rule gave them, so every read still finds what it read
before (in-place results included); an unsplit graph keeps its ops in the rule's order.

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.split import split_graph
>>> from trainplan.planner.zoo import get_model
>>> g = split_graph(build_training_graph(get_model("lenet5", batch=4)),
...                 {("input", "pool1"): 2})
>>> eo = chunk_major(g)
>>> eo.op_eo["conv1:forward#0"] < eo.op_eo["conv1/relu:forward#0"] < eo.op_eo["conv1:forward#1"]
True
"""

from __future__ import annotations

import heapq

import networkx as nx

from trainplan.planner.graph import STEPS, alias_root
from trainplan.planner.layers.base import F
from trainplan.planner.order import ExecutionOrder, execution_order

_RANK = {s: i for i, s in enumerate(STEPS)}


def chunk_major(graph: nx.DiGraph, order: str = "nntrainer") -> ExecutionOrder:
    """The ops of ``graph`` in ``order``'s phases, each phase chunk-major (module docstring);
    one op per EO."""
    base = execution_order(graph, order)
    nodes = graph.nodes
    position = {r["name"]: i for i, r in enumerate(graph.graph["layers"])}
    chunks = {r["name"]: r.get("chunks", 1) for r in graph.graph["layers"]}
    ranked = sorted(base.op_eo, key=lambda o: (base.op_eo[o], _RANK[nodes[o]["step"]]))
    after = _same_bytes_order(graph, ranked)

    def key(op: str) -> tuple:
        d = nodes[op]
        chunk = d.get("chunk")
        k = chunk.index if chunk is not None else (chunks[d["layer"]] - 1 if d["step"] != F
                                                    else 0)
        forward = d["step"] == F
        layer = position[d["layer"]] if forward else -position[d["layer"]]
        return (not forward, k, layer, _RANK[d["step"]], d.get("index", 0), base.op_eo[op])

    waiting = {op: 0 for op in ranked}
    for op in ranked:
        for nxt in after.get(op, ()):
            waiting[nxt] += 1
    ready = [(key(op), op) for op in ranked if waiting[op] == 0]
    heapq.heapify(ready)
    op_eo: dict[str, int] = {}
    while ready:
        _, op = heapq.heappop(ready)
        op_eo[op] = len(op_eo)
        for nxt in after.get(op, ()):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, (key(nxt), nxt))
    layer_eos: dict[str, dict[str, int]] = {}
    for op, e in op_eo.items():
        steps = layer_eos.setdefault(nodes[op]["layer"], {})
        steps[nodes[op]["step"]] = min(e, steps.get(nodes[op]["step"], e))
    return ExecutionOrder(f"{base.name}, chunk-major", layer_eos, op_eo, len(op_eo))


def _same_bytes_order(graph: nx.DiGraph, ranked: list[str]) -> dict[str, set[str]]:
    """Successors of each op: the next op touching any of its bytes (one alias class) in the
    rule's order, and every op of a later phase after the last of the forward pass."""
    root: dict[str, str] = {}
    last: dict[str, str] = {}
    after: dict[str, set[str]] = {}
    for op in ranked:
        for t in (*graph.predecessors(op), *graph.successors(op)):
            r = root.get(t)
            if r is None:
                r = root[t] = alias_root(graph, t)
            before = last.get(r)
            if before is not None and before != op:
                after.setdefault(before, set()).add(op)
            last[r] = op
    forward = [op for op in ranked if graph.nodes[op]["step"] == F]
    backward = [op for op in ranked if graph.nodes[op]["step"] != F]
    if forward and backward:  # the backward pass starts when the forward pass is done
        barrier = forward[-1]
        for op in forward[:-1]:
            after.setdefault(op, set()).add(barrier)
        for op in backward:
            after.setdefault(barrier, set()).add(op)
    return after
