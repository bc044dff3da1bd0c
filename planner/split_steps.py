"""The ops and tensors of a split graph (planner/split.py): unsplit layers copied, and one rule
per layer type for running its steps in chunks (``RULES``); the split and merge layers at
region boundaries are planner/split_boundary.py's.

A per-sample layer (``per_sample``) runs each step once per chunk with the ops and tensors of
the model built at the chunk's batch; a chunk after the first writes its weight gradients into
partial tensors of its own that the executor adds to the gradient. Batch normalisation
(``batch_norm``) keeps whole-batch statistics: its forward step first folds each chunk's mean
and sum of squared deviations into per-channel statistics (Chan et al.'s pairwise update; the
last chunk also derives the inverse standard deviation and updates the running statistics
once), then normalises each chunk; calc_gradient reduces Σdy and Σdy·x̂ over the chunks (the
last chunk writes the weight gradients from them) and calc_derivative computes each chunk's
input derivative from those sums. Op ``phase`` names the runtime kernel of such an op
(runtime/kernels/split.py).
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from trainplan.planner.build import grad_name, out_name
from trainplan.planner.graph import Slot, add_tensor
from trainplan.planner.layers.base import AG, CD, CG, F
from trainplan.planner.split_boundary import add_versions
from trainplan.planner.split_build import Region, SplitBuild, piece_name, version_name

#: Op phases with kernels of their own (runtime/kernels/split.py).
PHASES = ("split_forward", "split_derivative", "merge_forward", "merge_derivative",
          "bn_statistics", "bn_normalize", "bn_reduce", "bn_derivative",
          "fc_units_forward", "fc_units_gradient", "fc_units_derivative")

#: Per layer type, helpers shared by all chunks (not per sample).
SHARED_HELPERS = {"batch_normalization": ("invstd",)}


# --- what stays whole ----------------------------------------------------------------------

def _shared(graph: nx.DiGraph, tensor: str, types: dict[str, str]) -> bool:
    """Weights, optimizer state, weight gradients and per-channel helpers stay whole."""
    d = graph.nodes[tensor]
    if d["pool"] == "weight" or d["role"] == "gradient":
        return True
    slot = d["slot"]
    return (slot is not None and slot.kind == "helper"
            and slot.key in SHARED_HELPERS.get(types.get(d["layer"], ""), ()))


def _types(build: SplitBuild) -> dict[str, str]:
    return {name: r["type"] for name, r in build.records.items()}


def set_renames(build: SplitBuild) -> None:
    """For ops and tensors outside the regions: which tensor each reads instead (the last
    version of one built up chunk by chunk), and which a tensor or a write names instead."""
    g = build.graph
    for e in build.edges:
        out, grad = out_name(*e.source), grad_name(*e.source)
        if e.merge and not e.split:  # read outside: the merge layer's full tensor
            k = e.merge_region.chunks - 1
            build.read_as[out] = version_name(out_name(e.merge, 0), k)
            build.name_as[out], build.name_as[grad] = out_name(e.merge, 0), grad_name(e.merge, 0)
        if e.split and not e.merge and grad in g:  # its producer reads the gathered gradient
            build.read_as[grad] = version_name(grad, e.split_region.chunks - 1)


def emit_unsplit(build: SplitBuild, replaced: set[str]) -> None:
    """Copy every tensor that stays whole and every op of the layers outside the regions and
    unit splits (``replaced``: the unsplit tensors the unit splits replace by blocks)."""
    g, out = build.graph, build.out
    types = _types(build)
    for t, d in g.nodes(data=True):
        if d["kind"] != "tensor" or t in replaced or (
                d["layer"] in build.region_of and not _shared(g, t, types)):
            continue
        out.add_node(build.renamed(t), **{**d, "alias": build.name_as.get(d["alias"],
                                                                           d["alias"])})
    for o, d in g.nodes(data=True):
        if d["kind"] != "op" or d["layer"] in build.region_of or d["layer"] in build.units:
            continue
        build.op(o, reads=[build.read_name(t) for t in g.pred[o]],
                 writes=[build.renamed(t) for t in g.succ[o]],
                 **{k: v for k, v in d.items() if k != "kind"})


# --- layers in a region ----------------------------------------------------------------------

def emit_region_layer(build: SplitBuild, record: dict, region: Region) -> None:
    """The chunked ops and tensors of one region layer, by its type's rule."""
    RULES[record["type"]].emit(build, record, region)


def region_widths(graph: nx.DiGraph, record: dict, region: Region) -> dict[str, int]:
    """EOs each step of a region layer takes (planner/order.py), by its type's rule."""
    return RULES[record["type"]].widths(graph, record, region)


def _layer_op(graph: nx.DiGraph, layer: str, step: str) -> str | None:
    op = f"{layer}:{step}"
    return op if op in graph else None


def _piece_of(build: SplitBuild, chunk_graph: nx.DiGraph, region: Region, k: int,
              types: dict[str, str]) -> Callable[[str], str]:
    """Chunk ``k``'s name in the split graph of a tensor of the chunk-sized build."""
    def piece(t: str) -> str:
        d = chunk_graph.nodes[t]
        if _shared(chunk_graph, t, types):
            return t
        if build.region_of.get(d["layer"]) is region:
            return piece_name(t, k)
        edge = build.edge_from((d["layer"], d["slot"].key))  # an input from outside
        made = out_name(edge.split, 0) if d["slot"].kind == "output" else grad_name(edge.split, 0)
        return piece_name(made, k)
    return piece


def _add_pieces(build: SplitBuild, chunk_graph: nx.DiGraph, layer: str, region: Region, k: int,
                piece: Callable[[str], str], types: dict[str, str]) -> None:
    """Chunk ``k``'s own tensors of ``layer``, as the chunk-sized build has them."""
    for t in build.tensors_of(chunk_graph, layer):
        if _shared(chunk_graph, t, types):
            continue
        d = chunk_graph.nodes[t]
        add_tensor(build.out, piece(t), d["shape"], d["role"], dtype=d["dtype"],
                   alias=piece(d["alias"]) if d["alias"] else None, layer=layer, pool=d["pool"],
                   slot=d["slot"], chunk=build.chunk(region, k, whole=t))


def _update_op(build: SplitBuild, layer: str, final: dict[str, str]) -> None:
    """The layer's apply_gradient, once, reading the gradients as the last chunk left them."""
    g, op = build.graph, _layer_op(build.graph, layer, AG)
    if op is None:
        return
    d = g.nodes[op]
    build.op(op, reads=[final.get(t, t) for t in g.pred[op]], writes=list(g.succ[op]),
             **{k: v for k, v in d.items() if k != "kind"})


class PerSample:
    """Layers whose samples do not meet (all but batch normalisation and the losses): every
    step once per chunk, as the model built at the chunk's batch runs it."""

    def widths(self, graph: nx.DiGraph, record: dict, region: Region) -> dict[str, int]:
        steps = [s for s in (F, CG, CD) if _layer_op(graph, record["name"], s)]
        return dict.fromkeys(steps, region.chunks)

    def emit(self, build: SplitBuild, record: dict, region: Region) -> None:
        g, out, name = build.graph, build.out, record["name"]
        types = _types(build)
        grads = [t for t in build.tensors_of(g, name) if g.nodes[t]["role"] == "gradient"]
        for grad in grads:
            add_versions(out, grad, region.chunks)
        for k in range(region.chunks):
            cg = build.chunk_graph(region, k)
            piece = _piece_of(build, cg, region, k, types)
            _add_pieces(build, cg, name, region, k, piece, types)
            for grad in grads if k else ():  # the partial gradient the executor adds
                d = g.nodes[grad]
                add_tensor(out, piece_name(grad, k), d["shape"], "workspace", layer=name,
                           slot=d["slot"], chunk=build.chunk(region, k, whole=grad))
            for step in (F, CG, CD):
                op = _layer_op(cg, name, step)
                if op is not None:
                    self._chunk_op(build, cg, op, region, k, piece, grads)
        _update_op(build, name, {t: version_name(t, region.chunks - 1) for t in grads})

    @staticmethod
    def _chunk_op(build, cg, op, region, k, piece, grads) -> None:
        d = cg.nodes[op]
        reads = [piece(t) for t in cg.pred[op]]
        writes = [piece(t) for t in cg.succ[op]]
        flops = d["flops"]
        if d["step"] == CG and k and grads:  # accumulate into the gradient
            writes = ([t for t in writes if t not in grads] + [piece_name(t, k) for t in grads]
                      + [version_name(t, k) for t in grads])
            reads += [version_name(t, k - 1) for t in grads]
            flops += sum(build.graph.nodes[t]["nbytes"] // 4 for t in grads)
        build.op(piece_name(op, k), layer=d["layer"], step=d["step"], op_type=d["op_type"],
                 flops=flops, reads=reads, writes=writes, inplace=d["inplace"],
                 gather_rows=d["gather_rows"], index=k, chunk=build.chunk(region, k))


class BatchNorm:
    """Batch normalisation with whole-batch statistics (module docstring): forward takes 2K
    EOs (statistics, then normalisation), calc_gradient K (the reductions, needed by
    calc_derivative too), calc_derivative K."""

    def widths(self, graph: nx.DiGraph, record: dict, region: Region) -> dict[str, int]:
        n, name = region.chunks, record["name"]
        cd = _layer_op(graph, name, CD) is not None
        backward = cd or _layer_op(graph, name, CG) is not None
        return {F: 2 * n, **({CG: n} if backward else {}), **({CD: n} if cd else {})}

    def emit(self, build: SplitBuild, record: dict, region: Region) -> None:
        g, out, name, n = build.graph, build.out, record["name"], region.chunks
        types = _types(build)
        fop, cgop, cdop = (_layer_op(g, name, s) for s in (F, CG, CD))
        updated = [t for t in g.succ[fop] if g.nodes[t]["pool"] == "weight"]
        running = [g.nodes[t]["version_of"] for t in updated]
        affine = [t for t in g.pred[fop] if g.nodes[t]["pool"] == "weight" and t not in running]
        invstd = next(t for t in g.succ[fop] if g.nodes[t]["slot"] == Slot("helper", "invstd"))
        channels = g.nodes[invstd]["shape"]
        stats, sums = f"{name}:statistics", f"{name}:sums"
        add_tensor(out, stats, (3, *channels), "workspace", dtype="float64", layer=name,
                   slot=Slot("helper", "statistics"))
        add_versions(out, stats, n)
        backward = cdop is not None or cgop is not None
        if backward:
            add_tensor(out, sums, (2, *channels), "workspace", dtype="float64", layer=name,
                       slot=Slot("helper", "sums"))
            add_versions(out, sums, n)
        grads = list(g.succ[cgop]) if cgop else []
        gamma = [t for t in g.pred[cdop] if g.nodes[t]["pool"] == "weight"] if cdop else []
        last = n - 1
        for k in range(n):
            cg = build.chunk_graph(region, k)
            piece = _piece_of(build, cg, region, k, types)
            _add_pieces(build, cg, name, region, k, piece, types)
            x, y = piece(out_name(*record["inputs"][0])), piece(out_name(name, 0))
            normalized = piece(f"{name}:normalized")
            size = cg.nodes[f"{name}:normalized"]["nbytes"] // 4
            chain = [version_name(stats, k - 1)] if k else []
            op = _phase_op(build, name, region, k, record)
            op(F, "bn_statistics", k, [x, *chain, *(running if k == last else [])],
               [version_name(stats, k), *([invstd, *updated] if k == last else [])], 4 * size)
            op(F, "bn_normalize", n + k, [x, version_name(stats, last), invstd, *affine,
                                          *updated], [normalized, y], 4 * size)
            if not backward:
                continue
            dy = piece(grad_name(name, 0))
            chain = [version_name(sums, k - 1)] if k else []
            op(CG, "bn_reduce", k, [dy, normalized, *chain],
               [version_name(sums, k), *(grads if k == last else [])], 3 * size)
            if cdop is not None:
                dx = piece(grad_name(*record["inputs"][0]))
                op(CD, "bn_derivative", k, [dy, normalized, invstd, *gamma,
                                            version_name(sums, last)], [dx], 5 * size)
        _update_op(build, name, {})


def _phase_op(build: SplitBuild, layer: str, region: Region, k: int, record: dict):
    def op(step: str, phase: str, index: int, reads: list[str], writes: list[str],
           flops: int) -> None:
        build.op(piece_name(f"{layer}:{phase}", k), layer=layer, step=step,
                 op_type=record["type"], flops=flops, reads=reads, writes=writes,
                 inplace=record["inplace"] != "none", index=index,
                 chunk=build.chunk(region, k), phase=phase)
    return op


_PER_SAMPLE_TYPES = ("input", "conv2d", "pooling2d", "fully_connected", "embedding",
                     "activation", "dropout", "addition", "concat", "reshape", "flatten",
                     "multiout", "identity", "layer_normalization", "multi_head_attention",
                     "lstm")

#: Layer type -> how its steps run in chunks; a type not listed cannot be split.
RULES = {**dict.fromkeys(_PER_SAMPLE_TYPES, PerSample()), "batch_normalization": BatchNorm()}

__all__ = ["PHASES", "RULES", "emit_region_layer", "emit_unsplit", "region_widths",
           "set_renames"]
