"""Which graph tensor fills which slot of a kernel's LayerCtx, per op.

Every tensor carries its ``layer`` and ``slot`` (planner/graph.py: an output k, an output
gradient k, a weight, its gradient, an optimizer state of a weight, a helper, the label, the
data input) and, for a version written in place, ``version_of``; an op's read and write edges
say which of them its step touches. A planned run hands a kernel only those; the others it sees
as read-only NaN ghosts of the right shape, so a kernel reading a tensor its step does not
declare poisons its results (and differs from the reference run, which hands over every slot).

An op of a split step (planner/split.py) carries its ``chunk``: it sees chunk ``k``'s tensor of
a slot where one exists and the whole tensor otherwise (weights, statistics), its layer's
properties gain the ``chunk``, its kernel is the one its ``phase`` names when it has one, and a
weight gradient it writes into a partial tensor of its own is added to the gradient
(``accumulate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx

from trainplan.planner.graph import Slot, first_version
from trainplan.runtime.kernels import KERNELS, PHASE_KERNELS


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
    kernel: Callable | None = None
    blas: bool = False  # the kernel is BLAS products that use the op's threads themselves
    accumulate: dict[str, str] = field(default_factory=dict)


Index = dict[str, dict[tuple[Slot, int | None], str]]


def layer_tensors(graph: nx.DiGraph) -> Index:
    """Each layer's own tensors (first versions) by slot and chunk index (None: a whole
    tensor), gathered in one pass over the graph."""
    out: Index = {}
    for t, data in graph.nodes(data=True):
        if data.get("kind") == "tensor" and data.get("version_of") is None \
                and data.get("slot") is not None:
            chunk = data.get("chunk")
            key = (data["slot"], None if chunk is None else chunk.index)
            out.setdefault(data["layer"], {})[key] = t
    return out


def _slots(index: Index, layer: str, k: int | None) -> dict[Slot, str]:
    """A layer's tensors by slot as chunk ``k`` sees them: its own piece, else the whole."""
    own = index.get(layer, {})
    found = {slot: t for (slot, kk), t in own.items() if kk is None}
    if k is not None:
        found.update({slot: t for (slot, kk), t in own.items() if kk == k})
    return found


def bind(graph: nx.DiGraph, op: str, layer: dict, index: Index) -> Binding:
    """The binding of ``op`` (an op of ``layer``); ``index``: every layer's tensors by slot."""
    data = graph.nodes[op]
    chunk = data.get("chunk")
    k = None if chunk is None else chunk.index
    touched = {first_version(graph, t) for t in (*graph.predecessors(op),
                                                  *graph.successors(op))}
    if chunk is not None:
        layer = {**layer, "props": {**layer["props"], "chunk": chunk}}
    b = Binding(op, layer, data["step"], touched=touched)
    if data.get("phase"):
        b.kernel = PHASE_KERNELS[data["phase"]]
    elif data["step"] != "apply_gradient":
        b.kernel = getattr(KERNELS[layer["type"]], data["step"])
        b.blas = KERNELS[layer["type"]].blas
    own = _slots(index, layer["name"], k)
    n_out = len(layer["outputs"])
    if layer["placeholder"]:
        b.inputs, b.in_derivs = [own.get(Slot("input"))], [None]
    else:
        inputs = [_slots(index, src, k) for src, _ in layer["inputs"]]
        b.inputs = [slots.get(Slot("output", j))
                    for slots, (_, j) in zip(inputs, layer["inputs"])]
        b.in_derivs = [slots.get(Slot("output_grad", j))
                       for slots, (_, j) in zip(inputs, layer["inputs"])]
    b.outputs = [own.get(Slot("output", j)) for j in range(n_out)]  # none: a split update
    b.out_grads = [own.get(Slot("output_grad", j)) for j in range(n_out)]
    b.label = own.get(Slot("label"))
    whole = _slots(index, layer["name"], None)
    for slot, t in own.items():
        if slot.kind == "weight":
            b.weights[slot.key] = t
        elif slot.kind == "weight_grad":
            b.weight_grads[slot.key] = t
            if whole.get(slot, t) != t and t in touched:  # a chunk's partial gradient
                b.accumulate[slot.key] = whole[slot]
        elif slot.kind == "state":
            b.states.setdefault(slot.weight, {})[slot.key] = t
        elif slot.kind == "helper":
            b.helpers[slot.key] = t
    return b
