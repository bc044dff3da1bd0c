"""Execution orders, per-tensor lifespans and the live-bytes curve.

NNTrainer's rule (the default): forward EO = the layer's topological index 0..N-1; then,
walking layers in reverse topological order from EO N, a trainable layer (weightless ones
included, as NNTrainer counts them) takes three consecutive EOs (calc_gradient,
calc_derivative, apply_gradient), a frozen one a single EO for all three. Weight gradients
therefore die right after their layer's update. ``apply-at-end``
is the conventional framework order: the whole backward pass, then every update. A step split
over the batch in chunks (planner/split.py) takes one EO per op: its layer records the step's
``widths`` and each op its ``index`` within the step; unsplit graphs get exactly these EOs.

A tensor's lifespan is the sorted set of EOs of the ops that touch it or any tensor sharing its
bytes (views, in-place results), and its live interval is ``[first, last + 1)``. Weights and
optimizer state live over the whole iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from trainplan.planner.errors import UnknownName
from trainplan.planner.graph import alias_root, ops, replay_edges, tensors
from trainplan.planner.layers.base import AG, CD, CG, F


@dataclass(frozen=True)
class ExecutionOrder:
    """EO of every (layer, step) and of every op; ``n_eo`` slots in one iteration."""

    name: str
    layer_eos: dict[str, dict[str, int]]
    op_eo: dict[str, int]
    n_eo: int


def _width(layer: dict, step: str, default: int = 1) -> int:
    """EOs the layer's ``step`` takes: 1, or more for a step split into chunks, whose ops
    carry their ``index`` within the step (planner/split.py records ``widths``)."""
    return layer.get("widths", {}).get(step, default)


def _forward(layers: list[dict]) -> tuple[dict[str, dict[str, int]], int]:
    eos, e = {}, 0
    for layer in layers:
        eos[layer["name"]] = {F: e}
        e += _width(layer, F)
    return eos, e


def _backward_block(layer: dict, b: int, steps: tuple[str, ...]) -> tuple[dict[str, int], int]:
    """EOs of ``steps`` from ``b`` and the EO after them. Three slots: each step its own
    EOs. One slot: the steps share one EO, or when split run one after another."""
    if layer["slots"] == 3:
        out = {}
        for step in steps:
            out[step] = b
            b += _width(layer, step)
        return out, b
    if "widths" not in layer:
        return dict.fromkeys(steps, b), b + 1
    out, e = {}, b
    for step in steps:
        out[step] = e
        e += _width(layer, step, 0)
    return out, max(e, b + 1)


def _nntrainer(layers: list[dict]) -> dict[str, dict[str, int]]:
    eos, b = _forward(layers)
    for layer in reversed(layers):
        steps, b = _backward_block(layer, b, (CG, CD, AG))
        eos[layer["name"]].update(steps)
    return eos


def _apply_at_end(layers: list[dict]) -> dict[str, dict[str, int]]:
    eos, b = _forward(layers)
    for layer in reversed(layers):
        steps, b = _backward_block(layer, b, (CG, CD))
        eos[layer["name"]].update(steps)
    for layer in layers:  # updates in parameter order once the backward pass is done
        if layer["slots"] == 3:
            eos[layer["name"]][AG] = b
            b += _width(layer, AG)
        else:
            eos[layer["name"]][AG] = eos[layer["name"]][CD]
    return eos


ORDERS: dict[str, Callable[[list[dict]], dict[str, dict[str, int]]]] = {
    "nntrainer": _nntrainer,
    "apply-at-end": _apply_at_end,
}


def execution_order(graph: nx.DiGraph, order: str = "nntrainer") -> ExecutionOrder:
    """Assign an EO to every op of ``graph`` by the named rule."""
    if order not in ORDERS:
        raise UnknownName(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    layers = graph.graph["layers"]
    layer_eos = ORDERS[order](layers)
    nodes = graph.nodes
    op_eo = {op: layer_eos[nodes[op]["layer"]][nodes[op]["step"]] + nodes[op].get("index", 0)
             for op in ops(graph)}
    n_eo = 1 + max(e + _width(layer, step) - 1 for layer in layers
                   for step, e in layer_eos[layer["name"]].items())
    return ExecutionOrder(order, layer_eos, op_eo, n_eo)


@dataclass(frozen=True)
class Lifespan:
    """One buffer: an alias class of tensors sharing bytes, live over ``[start, end)``."""

    tensor: str
    members: tuple[str, ...]
    eos: tuple[int, ...]
    start: int
    end: int
    nbytes: int
    role: str
    pool: str


def lifespans(graph: nx.DiGraph, eo: ExecutionOrder,
              replays: Iterable[tuple[str, int]] = ()) -> dict[str, Lifespan]:
    """Lifespan of every alias class touched by some op, keyed by its root tensor;
    ``replays`` (op, EO) are forward ops run again to recompute their results."""
    classes: dict[str, list[str]] = {}
    for t in tensors(graph):
        classes.setdefault(alias_root(graph, t), []).append(t)
    again: dict[str, set[int]] = {}
    for op, e in replays:
        for t in (*replay_edges(graph, op)[0], *replay_edges(graph, op)[1]):
            again.setdefault(t, set()).add(e)
    out = {}
    for root, members in classes.items():
        data = graph.nodes[root]
        touched = sorted({eo.op_eo[o] for t in members
                          for o in (*graph.predecessors(t), *graph.successors(t))}
                         | {e for t in members for e in again.get(t, ())})
        if not touched:
            continue
        start, end = touched[0], touched[-1] + 1
        if data["pool"] == "weight":
            start, end = 0, eo.n_eo
        out[root] = Lifespan(root, tuple(members), tuple(touched), start, end,
                             max(graph.nodes[m]["nbytes"] for m in members),
                             data["role"], data["pool"])
    return out


def live_bytes(spans: dict[str, Lifespan], n_eo: int,
               pools: tuple[str, ...] = ("weight", "tensor")) -> np.ndarray:
    """Bytes live at each EO (index = EO), counting only the given pools."""
    delta = np.zeros(n_eo + 1, dtype=np.int64)
    for s in spans.values():
        if s.pool in pools:
            delta[s.start] += s.nbytes
            delta[s.end] -= s.nbytes
    return np.cumsum(delta)[:n_eo]


def lower_bound(spans: dict[str, Lifespan], n_eo: int,
                pools: tuple[str, ...] = ("weight", "tensor")) -> int:
    """Max over EOs of live bytes: the bound every offset plan is measured against."""
    curve = live_bytes(spans, n_eo, pools)
    return int(curve.max()) if len(curve) else 0


def no_reuse_bytes(spans: dict[str, Lifespan],
                   pools: tuple[str, ...] = ("weight", "tensor")) -> int:
    """Bytes needed when no two tensors share memory (views still share)."""
    return sum(s.nbytes for s in spans.values() if s.pool in pools)
