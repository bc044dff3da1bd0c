"""Model specifications: named layers with types, properties and input connections.

A ``ModelSpec`` is what the zoo builders and the INI loader produce and what the graph builder
consumes. ``resolve`` checks it, inserts a ``multiout`` layer wherever one output feeds several
layers (as NNTrainer does, so their derivatives are summed) and returns the layers in
topological order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from trainplan.planner.errors import InvalidGraph, InvalidShape, UnknownName
from trainplan.planner.layers import LAYERS


@dataclass(frozen=True)
class LayerDef:
    """One layer: ``inputs`` name producer layers, ``"name(k)"`` picks output k."""

    name: str
    type: str
    props: dict = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    trainable: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """A model: its layers, default batch, optimizer and a free description; ``weights``
    holds the initial values it brings (planner/initial_weights.py), if any."""

    name: str
    layers: tuple[LayerDef, ...]
    batch: int = 32
    optimizer: str = "adam"
    description: str = ""
    meta: dict = field(default_factory=dict)
    weights: Mapping[str, Any] = field(default_factory=dict)


def split_ref(ref: str) -> tuple[str, int]:
    """``"conv1(1)"`` -> ("conv1", 1); ``"conv1"`` -> ("conv1", 0)."""
    if ref.endswith(")") and "(" in ref:
        name, k = ref[:-1].split("(", 1)
        return name, int(k)
    return ref, 0


def is_graph_input(layer: LayerDef) -> bool:
    """An input layer, or any layer given an input_shape and no inputs (it reads the data)."""
    return LAYERS[layer.type].is_input or (not layer.inputs and "input_shape" in layer.props)


def resolve(spec: ModelSpec, *, compat: bool = False) -> list[LayerDef]:
    """Check the spec, insert multiout layers, and return layers in topological order.

    ``compat`` sorts the way NNTrainer does (a depth-first search in which the last consumer's
    branch comes first); otherwise definition order is kept wherever the graph allows.
    """
    layers = _check(spec)
    layers = _insert_multiout(layers, compat)
    order = _topological_dfs(layers) if compat else _topological(layers)
    by_name = {layer.name: layer for layer in layers}
    return [by_name[n] for n in order]


def _check(spec: ModelSpec) -> list[LayerDef]:
    seen: dict[str, LayerDef] = {}
    for layer in spec.layers:
        if layer.name in seen:
            raise InvalidGraph(f"layer name {layer.name!r} is used twice; names must be unique",
                               layer.name)
        if layer.type not in LAYERS:
            raise UnknownName(f"layer {layer.name!r}: unknown type {layer.type!r}; valid: "
                              + ", ".join(sorted(LAYERS)))
        seen[layer.name] = layer
    if not any(is_graph_input(layer) for layer in spec.layers):
        raise InvalidGraph(f"model {spec.name!r} has no input layer")
    for layer in spec.layers:
        ls = LAYERS[layer.type]
        if ls.is_loss and not layer.inputs:
            raise InvalidGraph(f"loss layer {layer.name!r} reads no layer; a loss compares a "
                               "layer's output with the label: give it input_layers", layer.name)
        if is_graph_input(layer) and not ls.is_input:
            continue
        if not ls.min_inputs <= len(layer.inputs) <= ls.max_inputs:
            raise InvalidGraph(f"layer {layer.name!r} ({layer.type}) takes {ls.min_inputs} to "
                               f"{ls.max_inputs} inputs, got {len(layer.inputs)}", layer.name)
        for ref in layer.inputs:
            src, _ = split_ref(ref)
            if src not in seen:
                raise InvalidGraph(f"layer {layer.name!r} reads {src!r}, which is not a layer "
                                   "of the model; fix input_layers", layer.name)
    return list(spec.layers)


def _insert_multiout(layers: list[LayerDef], compat: bool = False) -> list[LayerDef]:
    """Route every output read by more than one layer through a multiout layer, named
    ``<layer>/multiout[k]`` (``compat``: NNTrainer's ``<layer>/generated_out_<k>``)."""
    readers: dict[str, list[tuple[int, int]]] = {}
    for i, layer in enumerate(layers):
        for j, ref in enumerate(layer.inputs):
            src, k = split_ref(ref)
            readers.setdefault(f"{src}({k})", []).append((i, j))
    out = list(layers)
    extra = []
    for ref, uses in readers.items():
        if len(uses) < 2:
            continue
        src, k = split_ref(ref)
        if compat:
            mo_name = f"{src}/generated_out_{k}"
            while any(layer.name == mo_name for layer in out):
                mo_name += "_"
        else:
            mo_name = f"{src}/multiout" if k == 0 else f"{src}/multiout{k}"
        extra.append((src, LayerDef(mo_name, "multiout", {"outputs": len(uses)},
                                    (ref if k else src,))))
        for n, (i, j) in enumerate(uses):
            inputs = list(out[i].inputs)
            inputs[j] = f"{mo_name}({n})" if n else mo_name
            out[i] = replace(out[i], inputs=tuple(inputs))
    for src, mo in extra:  # place each multiout right after its producer
        idx = next(i for i, layer in enumerate(out) if layer.name == src)
        out.insert(idx + 1, mo)
    return out


def _topological(layers: list[LayerDef]) -> list[str]:
    """Topological order that keeps the definition order wherever the graph allows."""
    g = nx.DiGraph()
    position = {layer.name: i for i, layer in enumerate(layers)}
    g.add_nodes_from(position)
    for layer in layers:
        for ref in layer.inputs:
            g.add_edge(split_ref(ref)[0], layer.name)
    try:
        return list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        raise InvalidGraph("the model has a cycle: " + " -> ".join(u for u, _ in cycle)
                           + f" -> {cycle[0][0]}; layers must form a DAG", cycle[0][0]) from None


def _topological_dfs(layers: list[LayerDef]) -> list[str]:
    """NNTrainer's order: depth-first from each unvisited layer in list order, consumers in
    list order, a layer placed before everything it feeds (reverse post-order)."""
    consumers: dict[str, list[str]] = {layer.name: [] for layer in layers}
    for layer in layers:
        for ref in layer.inputs:
            consumers[split_ref(ref)[0]].append(layer.name)
    _topological(layers)  # raises InvalidGraph on a cycle
    visited: set[str] = set()
    stack: list[str] = []
    for layer in layers:
        if layer.name in visited:
            continue
        visited.add(layer.name)
        frames = [(layer.name, iter(consumers[layer.name]))]
        while frames:
            node, it = frames[-1]
            nxt = next((c for c in it if c not in visited), None)
            if nxt is None:
                stack.append(node)
                frames.pop()
            else:
                visited.add(nxt)
                frames.append((nxt, iter(consumers[nxt])))
    return stack[::-1]


def check_batch(batch) -> int:
    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise InvalidShape(f"batch must be a positive integer, got {batch!r}")
    return batch
