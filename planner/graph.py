"""The training-graph IR: a bipartite networkx DiGraph of op nodes and tensor nodes.

An edge tensor→op is a read, op→tensor a write. A tensor that an op updates in place (a weight
at apply_gradient, an activation computed in place) is written as a *new* tensor node whose
``alias`` names the tensor whose bytes it reuses, so the graph stays acyclic; lifespans merge
every alias class into one buffer. Identities are fields set once at build time, never parsed
back from names: a tensor's ``layer`` and ``slot`` (what it is to that layer: an output, a
weight, its gradient, an optimizer state of a weight, a helper...) and, for a new version
written in place, ``version_of`` (the first version); in a split graph (planner/split.py) the
tensors and ops of a split step also carry their ``chunk``.

>>> g = new_graph(model="tiny", batch=2)
>>> add_tensor(g, "x", (2, 3), "input")
>>> add_tensor(g, "y", (2, 3), "activation", alias="x")
>>> add_op(g, "relu:forward", layer="relu", step="forward", op_type="activation",
...        flops=6, reads=["x"], writes=["y"])
>>> check_graph(g)
>>> alias_root(g, "y")
'x'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import networkx as nx

from trainplan.planner.errors import InvalidGraph, InvalidShape
from trainplan.planner.resources import MAX_BYTES, magnitude

STEPS = ("forward", "calc_gradient", "calc_derivative", "apply_gradient")
ROLES = (
    "input", "label", "weight", "activation", "gradient", "derivative",
    "optimizer_state", "workspace",
)
FED_ROLES = ("input", "label")  # roles of the tensors the data feed fills from each batch
POOLS = ("weight", "tensor", "external")
DTYPE_BYTES = {"float32": 4, "float16": 2, "float64": 8, "int32": 4, "int64": 8, "uint8": 1}


SLOT_KINDS = ("input", "label", "output", "output_grad", "input_grad", "weight", "weight_grad",
              "state", "helper")


@dataclass(frozen=True)
class Slot:
    """What a tensor is to its layer: ``kind`` (one of SLOT_KINDS), ``key`` (the output index,
    or the weight's or helper's name) and, for an optimizer state, the ``weight`` it belongs to
    (``key`` is then the state's name, e.g. ``m``)."""

    kind: str
    key: int | str = 0
    weight: str | None = None


@dataclass(frozen=True)
class Chunk:
    """One piece of a split step or tensor (planner/split.py): piece ``index`` of ``count``,
    covering ``[start, stop)`` of ``total`` along ``axis`` (0: the samples of the batch).
    On a tensor, ``whole`` names the tensor of the unsplit graph it is a piece of."""

    index: int
    count: int
    start: int
    stop: int
    total: int
    axis: int = 0
    whole: str | None = None


def new_graph(**attrs) -> nx.DiGraph:
    """An empty training graph; ``attrs`` become graph attributes (model, batch, layers...)."""
    graph = nx.DiGraph()
    graph.graph.update(attrs)
    return graph


def add_tensor(
    graph: nx.DiGraph, name: str, shape: tuple[int, ...], role: str, *,
    dtype: str = "float32", alias: str | None = None, layer: str | None = None,
    pool: str | None = None, slot: Slot | None = None, version_of: str | None = None,
    **extra,
) -> None:
    """Add a tensor node; ``pool`` defaults to ``weight`` for weights and optimizer state."""
    if name in graph:
        raise InvalidGraph(f"tensor {name!r} defined twice", node=name)
    shape = tuple(int(d) for d in shape)
    nbytes = math.prod(shape) * DTYPE_BYTES.get(dtype, 4)
    if pool is None:
        pool = "weight" if role in ("weight", "optimizer_state") else "tensor"
    graph.add_node(name, kind="tensor", shape=shape, dtype=dtype, nbytes=nbytes, role=role,
                   alias=alias, layer=layer, pool=pool, slot=slot, version_of=version_of,
                   **extra)


def add_op(
    graph: nx.DiGraph, name: str, *, layer: str, step: str, op_type: str, flops: int,
    reads: Iterable[str], writes: Iterable[str], inplace: bool = False, gather_rows: int = 0,
    **extra,
) -> None:
    """Add an op node with read edges from ``reads`` and write edges to ``writes``;
    ``gather_rows``: the rows its strided window copies touch (planner/layers/base.py);
    ``extra`` attributes such as a split step's ``index``, ``chunk`` and ``phase``
    (planner/split.py)."""
    if name in graph:
        raise InvalidGraph(f"op {name!r} defined twice", node=name)
    graph.add_node(name, kind="op", layer=layer, step=step, op_type=op_type,
                   flops=int(flops), inplace=inplace, gather_rows=int(gather_rows), **extra)
    for t in dict.fromkeys(reads):
        graph.add_edge(t, name)
    for t in dict.fromkeys(writes):
        graph.add_edge(name, t)


def tensors(graph: nx.DiGraph) -> Iterator[str]:
    return (n for n, d in graph.nodes(data=True) if d.get("kind") == "tensor")


def ops(graph: nx.DiGraph) -> Iterator[str]:
    return (n for n, d in graph.nodes(data=True) if d.get("kind") == "op")


def reads(graph: nx.DiGraph, op: str) -> list[str]:
    return list(graph.predecessors(op))


def writes(graph: nx.DiGraph, op: str) -> list[str]:
    return list(graph.successors(op))


def first_version(graph: nx.DiGraph, tensor: str) -> str:
    """The tensor's first version (itself unless it was written in place as a new version)."""
    return graph.nodes[tensor].get("version_of") or tensor


def replay_edges(graph: nx.DiGraph, op: str) -> tuple[list[str], list[str]]:
    """What a forward op touches when it runs again to recompute its results: its reads and
    writes, less the persistent state it updates (batch-norm running statistics), which a
    recomputation leaves alone."""
    updated = {first_version(graph, t) for t in graph.successors(op)
               if graph.nodes[t]["pool"] == "weight"}
    reads = [t for t in graph.predecessors(op) if first_version(graph, t) not in updated]
    writes = [t for t in graph.successors(op) if graph.nodes[t]["pool"] != "weight"]
    return reads, writes


def alias_root(graph: nx.DiGraph, tensor: str) -> str:
    """The tensor whose bytes ``tensor`` finally shares (itself when it aliases nothing)."""
    seen = set()
    while graph.nodes[tensor].get("alias") is not None:
        if tensor in seen:
            raise InvalidGraph(f"alias cycle through tensor {tensor!r}", node=tensor)
        seen.add(tensor)
        tensor = graph.nodes[tensor]["alias"]
    return tensor


_TENSOR_KEYS = ("shape", "dtype", "nbytes", "role", "alias", "pool")
_OP_KEYS = ("layer", "step", "op_type", "flops")


def check_graph(graph: nx.DiGraph) -> None:
    """Validate the schema (kinds, attributes, bipartite edges, aliases) and acyclicity.

    Raises InvalidGraph naming the first offending node.
    """
    for node, data in graph.nodes(data=True):
        kind = data.get("kind")
        if kind == "tensor":
            _check_tensor(graph, node, data)
        elif kind == "op":
            _check_op(node, data)
        else:
            raise InvalidGraph(f"node {node!r} has kind {kind!r}; expected 'op' or 'tensor'", node)
    for u, v in graph.edges:
        if graph.nodes[u]["kind"] == graph.nodes[v]["kind"]:
            raise InvalidGraph(f"edge {u!r}->{v!r} joins two {graph.nodes[u]['kind']} nodes; "
                               "edges must go tensor->op (read) or op->tensor (write)", u)
    total = sum(graph.nodes[t]["nbytes"] for t in tensors(graph))
    if total >= MAX_BYTES:
        raise InvalidShape(f"the graph's tensors add up to {magnitude(total)} bytes, beyond 2^62 "
                           "(the bounds' int64 arithmetic would overflow); use a smaller batch "
                           "or input shape")
    for t in tensors(graph):
        if graph.in_degree(t) > 1:
            raise InvalidGraph(f"tensor {t!r} is written by {graph.in_degree(t)} ops; write a "
                               "new tensor that aliases it instead", t)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise InvalidGraph(f"the graph has a cycle through {cycle[0][0]!r}: "
                           + " -> ".join(str(u) for u, _ in cycle), cycle[0][0])


def _check_tensor(graph: nx.DiGraph, node: str, data: dict) -> None:
    missing = [k for k in _TENSOR_KEYS if k not in data]
    if missing:
        raise InvalidGraph(f"tensor {node!r} lacks {', '.join(missing)}", node)
    if data["role"] not in ROLES:
        raise InvalidGraph(f"tensor {node!r} has role {data['role']!r}; valid: {ROLES}", node)
    if data["pool"] not in POOLS:
        raise InvalidGraph(f"tensor {node!r} has pool {data['pool']!r}; valid: {POOLS}", node)
    if data["dtype"] not in DTYPE_BYTES:
        raise InvalidGraph(f"tensor {node!r} has dtype {data['dtype']!r}", node)
    if any(d <= 0 for d in data["shape"]) or data["nbytes"] <= 0:
        raise InvalidGraph(f"tensor {node!r} has an empty shape {data['shape']}", node)
    alias = data["alias"]
    if alias is not None:
        if alias not in graph or graph.nodes[alias].get("kind") != "tensor":
            raise InvalidGraph(f"tensor {node!r} aliases {alias!r}, which is not a tensor", node)
        root = alias_root(graph, node)
        if data["nbytes"] > graph.nodes[root]["nbytes"]:
            raise InvalidGraph(f"tensor {node!r} ({data['nbytes']} B) is larger than the tensor "
                               f"{root!r} it aliases ({graph.nodes[root]['nbytes']} B)", node)


def _check_op(node: str, data: dict) -> None:
    missing = [k for k in _OP_KEYS if k not in data]
    if missing:
        raise InvalidGraph(f"op {node!r} lacks {', '.join(missing)}", node)
    if data["step"] not in STEPS:
        raise InvalidGraph(f"op {node!r} has step {data['step']!r}; valid: {STEPS}", node)
    if data["flops"] < 0:
        raise InvalidGraph(f"op {node!r} has negative flops", node)
