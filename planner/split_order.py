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
from trainplan.planner.layers.base import AG, CD, CG, F
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
    phase = _phases(graph, base)
    after = _same_bytes_order(graph, ranked, phase)

    def key(op: str) -> tuple:
        d = nodes[op]
        chunk = d.get("chunk")
        k = chunk.index if chunk is not None else (chunks[d["layer"]] - 1 if d["step"] != F
                                                    else 0)
        layer = position[d["layer"]] if d["step"] == F else -position[d["layer"]]
        return (phase[op], k, layer, _RANK[d["step"]], d.get("index", 0), base.op_eo[op])

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


def _phases(graph: nx.DiGraph, base: ExecutionOrder) -> dict[str, int]:
    """0: the forward pass, 1: the backward pass, 2: updates the rule runs after the whole
    backward pass (apply-at-end)."""
    nodes = graph.nodes
    backward = [e for o, e in base.op_eo.items() if nodes[o]["step"] in (CG, CD)]
    end = max(backward, default=-1)
    return {o: 0 if nodes[o]["step"] == F else 2 if nodes[o]["step"] == AG and e > end else 1
            for o, e in base.op_eo.items()}


def _same_bytes_order(graph: nx.DiGraph, ranked: list[str],
                      phase: dict[str, int]) -> dict[str, set[str]]:
    """Successors of each op: the next op touching any of its bytes (one alias class) in the
    rule's order, and every op of a phase after the last op of the phase before."""
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
    groups = [[op for op in ranked if phase[op] == p] for p in (0, 1, 2)]
    groups = [group for group in groups if group]
    for done, later in zip(groups, groups[1:]):  # a phase starts when the one before is done
        barrier = done[-1]
        for op in done[:-1]:
            after.setdefault(op, set()).add(barrier)
        for op in later:
            after.setdefault(barrier, set()).add(op)
    return after
