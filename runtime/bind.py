"""Which graph tensor fills which slot of a kernel's LayerCtx, per op.

The graph names tensors by layer (``L:out0``, ``L:out0:grad``, ``L:filter``, ``L:filter:grad``,
``L:filter:m``, ``L:label``, ``L:<helper>``, ``L:input``; ``...@updated`` for a version written
in place); an op's read and write edges say which of them its step touches. A planned run hands
a kernel only those; the others it sees as read-only NaN ghosts of the right shape, so a kernel
reading a tensor its step does not declare poisons its results (and differs from the reference
run, which hands over every slot).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from trainplan.planner.build import grad_name, out_name
from trainplan.planner.spec import split_ref


@dataclass
class Binding:
    """Slot -> graph tensor name for one op; ``touched``: the tensors the op's step reads or
    writes (the others are named only so a kernel can see their shapes)."""

    op: str
    layer: dict
    step: str
    inputs: list[str | None] = field(default_factory=list)
    outputs: list[str | None] = field(default_factory=list)
    out_grads: list[str | None] = field(default_factory=list)
    in_derivs: list[str | None] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)
    weight_grads: dict[str, str] = field(default_factory=dict)
    states: dict[str, dict[str, str]] = field(default_factory=dict)
    helpers: dict[str, str] = field(default_factory=dict)
    label: str | None = None
    touched: set = field(default_factory=set)


def layer_tensors(graph: nx.DiGraph) -> dict[str, set[str]]:
    """Each layer's own tensors (first versions only), gathered in one pass over the graph."""
    out: dict[str, set[str]] = {}
    for t, data in graph.nodes(data=True):
        if data.get("kind") == "tensor" and "@" not in t:
            out.setdefault(data["layer"], set()).add(t)
    return out


def bind(graph: nx.DiGraph, op: str, layer: dict, own: set[str]) -> Binding:
    """The binding of ``op`` (an op of ``layer``, whose own tensors are ``own``)."""
    name = layer["name"]
    touched = {t.split("@")[0] for t in (*graph.predecessors(op), *graph.successors(op))}
    refs = [split_ref(r) for r in layer["inputs"]]
    input_names = [f"{name}:input"] if layer["placeholder"] else [out_name(s, k) for s, k in refs]
    outputs = [out_name(name, k) for k in range(len(layer["outputs"]))]
    b = Binding(op, layer, graph.nodes[op]["step"], touched=touched)
    b.inputs = input_names
    b.outputs = outputs
    b.out_grads = [g if g in graph else None for g in (grad_name(name, k)
                                                        for k in range(len(outputs)))]
    b.in_derivs = ([grad_name(s, k) if grad_name(s, k) in graph else None for s, k in refs]
                   if not layer["placeholder"] else [None])
    claimed = set(input_names) | set(outputs) | set(b.out_grads) | set(b.in_derivs)
    for t in (own | touched) - claimed:
        _claim(b, graph, t, name)
    return b


def _claim(b: Binding, graph: nx.DiGraph, t: str, layer: str) -> None:
    data = graph.nodes[t]
    local = t[len(layer) + 1:] if t.startswith(layer + ":") else t
    role = data["role"]
    if role == "label":
        b.label = t
    elif role == "weight":
        b.weights[local] = t
    elif role == "gradient":
        b.weight_grads[local.rsplit(":", 1)[0]] = t
    elif role == "optimizer_state":
        weight, state = local.rsplit(":", 1)
        b.states.setdefault(weight, {})[state] = t
    elif role in ("workspace", "activation") and data["layer"] == layer:
        b.helpers[local] = t
