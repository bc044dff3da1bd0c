"""The split and merge layers at region boundaries (planner/split.py).

A full tensor entering a region is cut into chunks by a ``split`` layer: its forward copies
each chunk's rows into the chunk's tensor, its calc_derivative copies each chunk's gradient
into its rows of the full gradient (built up chunk by chunk, versions of one buffer). A
region's output read outside is gathered by a ``merge`` layer, the reverse. Each copy is one
op per chunk, at its own EO, declaring the bytes it moves (the chunk's rows, read and
written), though it names the whole tensor it cuts or builds up.
"""

from __future__ import annotations

import networkx as nx

from trainplan.planner.build import grad_name, out_name
from trainplan.planner.graph import Slot, add_tensor
from trainplan.planner.layers.base import CD, F
from trainplan.planner.split_build import Region, SplitBuild, piece_name, version_name


def add_versions(out: nx.DiGraph, tensor: str, count: int) -> None:
    """Versions 1 .. count-1 of ``tensor``, each written in place over it by one chunk."""
    d = out.nodes[tensor]
    for k in range(1, count):
        out.add_node(version_name(tensor, k),
                     **{**d, "alias": tensor, "version_of": d["version_of"] or tensor})


def emit_boundary_layers(build: SplitBuild) -> None:
    """The split and merge layers of every boundary edge: forward copies rows into chunks (or
    chunks into rows), calc_derivative the reverse for the gradients."""
    g = build.graph
    for e in build.edges:
        shape = g.nodes[out_name(*e.source)]["shape"]
        has_grad = grad_name(*e.source) in g
        full, full_grad = out_name(*e.source), grad_name(*e.source)
        if e.merge:
            full, full_grad = _merge_layer(build, e.merge, e.merge_region, e.source, shape,
                                           has_grad)
        if e.split:
            _split_layer(build, e.split, e.split_region, full, full_grad, shape, has_grad)


def _merge_layer(build: SplitBuild, name: str, region: Region, source: tuple[str, int],
                 shape: tuple, has_grad: bool) -> tuple[str, str]:
    out, n = build.out, region.chunks
    full, full_grad = out_name(name, 0), grad_name(name, 0)
    add_tensor(out, full, shape, "activation", layer=name, slot=Slot("output", 0))
    add_versions(out, full, n)
    if has_grad:
        add_tensor(out, full_grad, shape, "derivative", layer=name, slot=Slot("output_grad", 0))
    for k in range(n):
        piece = piece_name(out_name(*source), k)
        _boundary_op(build, name, F, "merge", region, k,
                     [piece] + ([version_name(full, k - 1)] if k else []),
                     [version_name(full, k)], _rows_bytes(out, full, region, k))
        if has_grad:
            _boundary_op(build, name, CD, "merge", region, k, [build.final.get(full_grad,
                                                                               full_grad)],
                         [piece_name(grad_name(*source), k)], _rows_bytes(out, full, region, k))
    return version_name(full, n - 1), full_grad


def _split_layer(build: SplitBuild, name: str, region: Region, full: str, full_grad: str,
                 shape: tuple, has_grad: bool) -> None:
    out, n = build.out, region.chunks
    if has_grad:
        add_versions(out, full_grad, n)
    for k, (start, stop) in enumerate(region.bounds):
        piece = piece_name(out_name(name, 0), k)
        add_tensor(out, piece, (stop - start, *shape[1:]), "activation", layer=name,
                   slot=Slot("output", 0), chunk=build.chunk(region, k))
        if has_grad:
            add_tensor(out, piece_name(grad_name(name, 0), k), (stop - start, *shape[1:]),
                       "derivative", layer=name, slot=Slot("output_grad", 0),
                       chunk=build.chunk(region, k))
    for k in range(n):
        rows = _rows_bytes(out, full, region, k)
        _boundary_op(build, name, F, "split", region, k, [build.final.get(full, full)],
                     [piece_name(out_name(name, 0), k)], rows)
        if has_grad:
            _boundary_op(build, name, CD, "split", region, k,
                         [piece_name(grad_name(name, 0), k)]
                         + ([version_name(full_grad, k - 1)] if k else []),
                         [version_name(full_grad, k)], rows)


def _rows_bytes(out: nx.DiGraph, full: str, region: Region, k: int) -> int:
    start, stop = region.bounds[k]
    d = out.nodes[full]
    return d["nbytes"] // d["shape"][0] * (stop - start)


def _boundary_op(build: SplitBuild, layer: str, step: str, kind: str, region: Region, k: int,
                 reads: list[str], writes: list[str], rows_bytes: int) -> None:
    """A copy of one chunk's rows: it moves the chunk's bytes twice (read and write), though
    it names the whole tensor it reads or builds up."""
    phase = f"{kind}_{'forward' if step == F else 'derivative'}"
    build.op(piece_name(f"{layer}:{step}", k), layer=layer, step=step, op_type=kind,
             flops=0, reads=reads, writes=writes, index=k, chunk=build.chunk(region, k),
             phase=phase, bytes_touched=2 * rows_bytes)
