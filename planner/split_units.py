"""Unit splitting: a fully-connected layer whose weight is too big for one EO runs each step
over blocks of its output units (planner/split.py ``split_graph(..., units=...)``).

Splitting the batch does not shrink a weight: a layer reading a weight of hundreds of MB
(VGG-16's first classifier layer: 411 MB, with its gradient and two Adam states 1.6 GB at its
update) needs it whole at every step. Here the weight (n_in, U) and bias become K weights of
(n_in, U_k) and (U_k,), each with its own gradient and optimizer state, and every step runs K
times, one EO per block: forward writes the block's columns of the output, calc_gradient the
block's gradients, calc_derivative adds the block's share to the input derivative, and
apply_gradient updates one block. The output and the input derivative are built up block by
block (versions of one buffer). The blocks' initial values are the slices of the unsplit
weight's (runtime/init.py reads the piece's ``chunk``).
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from trainplan.planner.build import grad_name, out_name
from trainplan.planner.graph import Chunk, Slot, add_tensor
from trainplan.planner.layers.base import AG, CD, CG, F
from trainplan.planner.split_boundary import add_versions
from trainplan.planner.split_build import (
    InvalidSplit,
    SplitBuild,
    chunk_bounds,
    piece_name,
    version_name,
)

UNIT_TYPES = ("fully_connected",)
_PHASES = {F: "fc_units_forward", CG: "fc_units_gradient", CD: "fc_units_derivative"}


def check_units(graph: nx.DiGraph, units: dict[str, int], batch_regions: set[str]) -> None:
    """InvalidSplit naming the problem when a unit split cannot be made."""
    records = {r["name"]: r for r in graph.graph["layers"]}
    for name, pieces in units.items():
        record = records.get(name)
        if record is None or record["type"] not in UNIT_TYPES:
            raise InvalidSplit(f"unit split of {name!r}: only fully_connected layers split "
                               "their units; name one of them")
        if name in batch_regions:
            raise InvalidSplit(f"unit split of {name!r}: the layer is also in a batch split "
                               "region; split it one way")
        total = graph.nodes[f"{name}:weight"]["shape"][-1]
        if isinstance(pieces, bool) or not isinstance(pieces, int) or not 2 <= pieces <= total:
            raise InvalidSplit(f"unit split of {name!r}: {pieces!r} blocks; use an integer "
                               f"from 2 to its units ({total})")


def unit_widths(graph: nx.DiGraph, name: str, pieces: int) -> dict[str, int]:
    return {s: pieces for s in (F, CG, CD, AG) if f"{name}:{s}" in graph}


def unit_finals(build: SplitBuild, record: dict, pieces: int) -> None:
    """The versions the readers of a unit-split layer's output and input derivative read."""
    g = build.graph
    build.final[out_name(record["name"], 0)] = version_name(out_name(record["name"], 0),
                                                            pieces - 1)
    dx = grad_name(*record["inputs"][0])
    if dx in g and f"{record['name']}:{CD}" in g:
        dx = build.renamed(dx)
        build.final[dx] = version_name(dx, pieces - 1)


def emit_unit_layer(build: SplitBuild, record: dict, pieces: int) -> None:
    """The weight blocks, their gradients and states, and K ops per step of one layer."""
    g, out, name = build.graph, build.out, record["name"]
    total = g.nodes[f"{name}:weight"]["shape"][-1]
    bounds = chunk_bounds(total, pieces)
    y = out_name(name, 0)
    add_versions(out, y, pieces)
    x = out_name(*record["inputs"][0])
    dx = grad_name(*record["inputs"][0])
    dx = build.renamed(dx) if dx in g else None
    if dx is not None and f"{name}:{CD}" in g:
        add_versions(out, dx, pieces)
    blocks = [_add_blocks(build, name, k, bounds) for k in range(pieces)]
    dy = grad_name(name, 0)
    for k, (start, stop) in enumerate(bounds):
        weights, grads, states = blocks[k]
        op = _op_maker(build, name, Chunk(k, pieces, start, stop, total, -1),
                       (stop - start) / total)
        chain = [version_name(y, k - 1)] if k else []
        op(F, [build.read_name(x), *weights.values(), *chain], [version_name(y, k)])
        if f"{name}:{CG}" in g:
            op(CG, [build.read_name(x), dy], list(grads.values()))
        if f"{name}:{CD}" in g:
            chain = [version_name(dx, k - 1)] if k else []
            op(CD, [dy, weights["weight"], *chain], [version_name(dx, k)])
        if f"{name}:{AG}" in g:
            olds = [*weights.values(), *[s for w in states.values() for s in w]]
            op(AG, [*olds, *grads.values()], [_updated(out, t) for t in olds])


def _op_maker(build: SplitBuild, name: str, chunk: Chunk, share: float):
    """Adds block ``chunk.index``'s op of a step: the unsplit op's flops times the block's
    share of the units; forward and backward run the block kernels (``_PHASES``)."""
    def op(step: str, reads: list[str], writes: list[str]) -> None:
        d = build.graph.nodes[f"{name}:{step}"]
        extra = {"phase": _PHASES[step]} if step in _PHASES else {}
        build.op(piece_name(f"{name}:{step}", chunk.index), layer=name, step=step,
                 op_type=d["op_type"], flops=round(d["flops"] * share), reads=reads,
                 writes=writes, inplace=False, index=chunk.index, chunk=chunk, **extra)
    return op


def _add_blocks(build: SplitBuild, name: str, k: int, bounds) -> tuple[dict, dict, dict]:
    """Block k's weights, gradients and optimizer states (by weight name)."""
    g, out = build.graph, build.out
    start, stop = bounds[k]
    total = bounds[-1][1]
    weights, grads, states = {}, {}, {}
    for w in ("weight", "bias"):
        whole = f"{name}:{w}"
        if whole not in g:
            continue
        d = g.nodes[whole]
        axis = len(d["shape"]) - 1
        shape = (*d["shape"][:-1], stop - start)
        chunk = Chunk(k, len(bounds), start, stop, total, axis, whole)
        weights[w] = piece_name(whole, k)
        add_tensor(out, weights[w], shape, "weight", layer=name, learnable=True,
                   slot=Slot("weight", w), chunk=chunk)
        if f"{whole}:grad" in g:
            grads[w] = piece_name(f"{whole}:grad", k)
            add_tensor(out, grads[w], shape, "gradient", layer=name,
                       slot=Slot("weight_grad", w), chunk=replace(chunk, whole=f"{whole}:grad"))
        states[w] = []
        for t in g.successors(f"{name}:{AG}") if f"{name}:{AG}" in g else ():
            s = g.nodes[t]
            if s["role"] == "optimizer_state" and s["slot"].weight == w:
                state = piece_name(s["version_of"], k)
                add_tensor(out, state, shape, "optimizer_state", layer=name, slot=s["slot"],
                           chunk=replace(chunk, whole=s["version_of"]))
                states[w].append(state)
    return weights, grads, states


def _updated(out: nx.DiGraph, tensor: str) -> str:
    d = out.nodes[tensor]
    new = f"{tensor}@updated"
    out.add_node(new, **{**d, "alias": tensor, "version_of": tensor})
    return new


def unit_tensors(graph: nx.DiGraph, name: str) -> set[str]:
    """The unsplit tensors a unit-split layer replaces by blocks: weights, their gradients,
    optimizer states and updated versions."""
    return {t for t, d in graph.nodes(data=True) if d["kind"] == "tensor"
            and d["layer"] == name and (d["pool"] == "weight" or d["role"] == "gradient")}
