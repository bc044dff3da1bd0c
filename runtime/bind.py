"""Which graph tensor fills which slot of a kernel's LayerCtx, per op.

Every tensor carries its ``layer`` and ``slot`` (planner/graph.py: an output k, an output
gradient k, a weight, its gradient, an optimizer state of a weight, a helper, the label, the
data input) and, for a version written in place, ``version_of``; an op's read and write edges
say which of them its step touches. A planned run hands a kernel only those; the others it sees
as read-only NaN ghosts of the right shape, so a kernel reading a tensor its step does not
declare poisons its results (and differs from the reference run, which hands over every slot).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from trainplan.planner.graph import Slot, first_version


@dataclass
class Binding:
    """Slot -> graph tensor name for one op; ``touched``: the tensors the op's step reads or
    writes (first versions; the others are named only so a kernel can see their shapes)."""

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
    replay: bool = False  # a forward op run again to recompute its results


def layer_tensors(graph: nx.DiGraph) -> dict[str, dict[Slot, str]]:
    """Each layer's own tensors (first versions) by slot, gathered in one pass over the graph."""
    out: dict[str, dict[Slot, str]] = {}
    for t, data in graph.nodes(data=True):
        if data.get("kind") == "tensor" and data.get("version_of") is None \
                and data.get("slot") is not None:
            out.setdefault(data["layer"], {})[data["slot"]] = t
    return out


def bind(graph: nx.DiGraph, op: str, layer: dict, index: dict[str, dict[Slot, str]]) -> Binding:
    """The binding of ``op`` (an op of ``layer``); ``index``: every layer's tensors by slot."""
    own = index.get(layer["name"], {})
    touched = {first_version(graph, t) for t in (*graph.predecessors(op),
                                                  *graph.successors(op))}
    b = Binding(op, layer, graph.nodes[op]["step"], touched=touched)
    n_out = len(layer["outputs"])
    if layer["placeholder"]:
        b.inputs, b.in_derivs = [own.get(Slot("input"))], [None]
    else:
        b.inputs = [index[src][Slot("output", k)] for src, k in layer["inputs"]]
        b.in_derivs = [index[src].get(Slot("output_grad", k)) for src, k in layer["inputs"]]
    b.outputs = [own[Slot("output", k)] for k in range(n_out)]
    b.out_grads = [own.get(Slot("output_grad", k)) for k in range(n_out)]
    b.label = own.get(Slot("label"))
    for slot, t in own.items():
        if slot.kind == "weight":
            b.weights[slot.key] = t
        elif slot.kind == "weight_grad":
            b.weight_grads[slot.key] = t
        elif slot.kind == "state":
            b.states.setdefault(slot.weight, {})[slot.key] = t
        elif slot.kind == "helper":
            b.helpers[slot.key] = t
    return b
