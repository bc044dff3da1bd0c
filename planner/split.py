"""Step splitting: inside a region of layers every step runs over the batch in chunks.

``split_graph(graph, splits)`` rewrites a training graph. ``splits`` maps a region — a
contiguous run of layers in the graph's layer order, named by its first and last layer — to a
chunk count K (K need not divide the batch: the first ``batch % K`` chunks take one sample
more). Inside a region every per-sample tensor of batch N becomes K tensors holding the rows of
one chunk each (separately live, resident and swappable), and every step of every layer runs
once per chunk, each op at its own EO: ops carry their ``index`` within the step and their
``chunk`` (planner/graph.py ``Chunk``), layers record the EOs each step takes (``widths``,
planner/order.py). Weights are shared: a chunk after the first computes its weight gradient
into a partial tensor of its own, which the executor adds to the gradient (a new version of
it, so the graph stays acyclic); the update runs once. Batch normalisation keeps whole-batch
statistics (planner/split_steps.py). A full tensor entering a region is cut into chunks by a
``split`` layer, a region's output read outside is gathered by a ``merge`` layer, and their
backward steps do the reverse for the gradients; a region that starts at an input layer feeds
chunk placeholders directly (runtime/data.py).

Each chunk's ops and tensors are taken from the same model built at the chunk's batch, so
helpers, flops and window rows are those of a chunk-sized step.

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.zoo import get_model
>>> g = build_training_graph(get_model("lenet5", batch=4))
>>> s = split_graph(g, {("input", "conv2/relu"): 2})
>>> s.nodes["conv1:out0#1"]["shape"], s.nodes["conv1:forward#1"]["index"]
((2, 6, 28, 28), 1)
>>> [r["type"] for r in s.graph["layers"]][5:8]
['activation', 'merge', 'pooling2d']
"""

from __future__ import annotations

from collections.abc import Mapping

import networkx as nx

from trainplan.planner.build import grad_name, out_name
from trainplan.planner.errors import UnknownName
from trainplan.planner.graph import check_graph, new_graph
from trainplan.planner.identity import fingerprint
from trainplan.planner.layers import LAYERS
from trainplan.planner.layers.base import CD, F
from trainplan.planner.split_boundary import emit_boundary_layers
from trainplan.planner.split_build import (
    Edge,
    InvalidSplit,
    Region,
    SplitBuild,
    chunk_bounds,
)
from trainplan.planner.split_steps import (
    RULES,
    emit_region_layer,
    emit_unsplit,
    region_widths,
    set_renames,
)
from trainplan.planner.split_units import (
    check_units,
    emit_unit_layer,
    unit_finals,
    unit_tensors,
    unit_widths,
)

#: A region (first layer, last layer) -> its chunk count.
Splits = Mapping[tuple[str, str], int]


def split_graph(graph: nx.DiGraph, splits: Splits,
                units: Mapping[str, int] | None = None) -> nx.DiGraph:
    """The training graph with every region of ``splits`` run in chunks of the batch and every
    fully-connected layer of ``units`` in blocks of its output units (planner/split_units.py);
    ``graph`` itself when both are empty."""
    units = dict(units or {})
    regions = resolve_regions(graph, splits)
    region_of = {name: r for r in regions for name in r.layers}
    check_units(graph, units, set(region_of))
    if not regions and not units:
        return graph
    records = {r["name"]: r for r in graph.graph["layers"]}
    edges = _boundary_edges(graph.graph["layers"], region_of)
    layers = _layer_records(graph, region_of, edges, units)
    out = new_graph(**{**graph.graph, "layers": layers,
                       "split": tuple((r.first, r.last, r.chunks) for r in regions),
                       "split_units": tuple(units.items())})
    build = SplitBuild(graph, out, region_of, records, edges, units)
    set_renames(build)
    for name, pieces in units.items():
        unit_finals(build, records[name], pieces)
    emit_unsplit(build, set().union(*(unit_tensors(graph, n) for n in units)))
    emit_boundary_layers(build)
    for name, record in records.items():
        if name in region_of:
            emit_region_layer(build, record, region_of[name])
        elif name in units:
            emit_unit_layer(build, record, units[name])
    build.add_ops()
    check_graph(out)
    return out


def resolve_regions(graph: nx.DiGraph, splits: Splits) -> list[Region]:
    """The regions of ``splits`` in layer order; InvalidSplit or UnknownName naming the
    problem when one cannot be split."""
    if graph.graph.get("compat"):
        raise InvalidSplit("an NNTrainer-compatible graph is realised as NNTrainer does and "
                           "cannot be split; build it without --nntrainer-compat")
    if graph.graph.get("split") or graph.graph.get("split_units"):
        raise InvalidSplit("the graph is already split; split the unsplit graph once, with "
                           "every region")
    records = graph.graph["layers"]
    names = [r["name"] for r in records]
    position = {n: i for i, n in enumerate(names)}
    batch = graph.graph["batch"]
    regions, owner = [], {}
    for (first, last), chunks in splits.items():
        where = f"split region {first!r}..{last!r}"
        for name in (first, last):
            if name not in position:
                raise UnknownName(f"{where}: {name!r} is not a layer of the graph; layers: "
                                  + ", ".join(names))
        a, b = position[first], position[last]
        if a > b:
            raise InvalidSplit(f"{where}: {first!r} comes after {last!r} in the layer order; "
                               "name the first layer first")
        if isinstance(chunks, bool) or not isinstance(chunks, int) or not 2 <= chunks <= batch:
            raise InvalidSplit(f"{where}: {chunks!r} chunks; use an integer from 2 to the "
                               f"batch ({batch})")
        for r in records[a:b + 1]:
            _check_splittable(r, where)
            if r["name"] in owner:
                raise InvalidSplit(f"split regions {owner[r['name']]} and {first!r}..{last!r} "
                                   f"both hold {r['name']!r}; regions must not overlap")
            owner[r["name"]] = f"{first!r}..{last!r}"
        regions.append(Region(first, last, chunks, tuple(names[a:b + 1]),
                              chunk_bounds(batch, chunks)))
    return sorted(regions, key=lambda r: position[r.first])


def _check_splittable(record: dict, where: str) -> None:
    if LAYERS[record["type"]].is_loss:
        raise InvalidSplit(f"{where} holds the loss {record['name']!r}, whose value is a mean "
                           "over the whole batch; end the region before it")
    if record["type"] not in RULES:
        raise InvalidSplit(f"{where} holds {record['name']!r}, a {record['type']} layer, which "
                           "cannot run in chunks; splittable types: " + ", ".join(sorted(RULES)))


def _boundary_edges(records: list[dict], region_of: dict[str, Region]) -> list[Edge]:
    """Layer outputs read across a region boundary, each with the pseudo layers that carry
    it. Every output has one reader (``resolve`` routes shared outputs through multiout)."""
    taken = {r["name"] for r in records}
    edges = []
    for r in records:
        for src, k in r["inputs"]:
            a, b = region_of.get(src), region_of.get(r["name"])
            if a is b:
                continue
            suffix = f"{k}" if k else ""
            edge = Edge((src, k), r["name"])
            if a is not None:
                edge.merge, edge.merge_region = _fresh(f"{src}/merge{suffix}", taken), a
            if b is not None:
                edge.split, edge.split_region = _fresh(f"{src}/split{suffix}", taken), b
            edges.append(edge)
    return edges


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "'"
    taken.add(name)
    return name


def _layer_records(graph: nx.DiGraph, region_of: dict[str, Region],
                   edges: list[Edge], units: dict[str, int]) -> list[dict]:
    """The layer records of the split graph: pseudo layers right before the layer they feed,
    region layers with their chunk count and step widths, inputs rewired."""
    by_consumer: dict[str, list[Edge]] = {}
    for e in edges:
        by_consumer.setdefault(e.consumer, []).append(e)
    out = []
    for r in graph.graph["layers"]:
        inputs = list(r["inputs"])
        for e in by_consumer.get(r["name"], []):
            source = e.source
            if e.merge:
                out.append(_pseudo(graph, "merge", e.merge, source, e))
                source = (e.merge, 0)
            if e.split:
                out.append(_pseudo(graph, "split", e.split, source, e))
                source = (e.split, 0)
            inputs[inputs.index(e.source)] = source
        record = {**r, "inputs": inputs}
        if r["name"] in region_of:
            region = region_of[r["name"]]
            record.update(chunks=region.chunks, widths=region_widths(graph, r, region))
        if r["name"] in units:
            record.update(units=units[r["name"]],
                          widths=unit_widths(graph, r["name"], units[r["name"]]))
        out.append(record)
    return [{**r, "index": i} for i, r in enumerate(out)]


def _pseudo(graph: nx.DiGraph, kind: str, name: str, source: tuple[str, int],
            edge: Edge) -> dict:
    """The record of the split or merge layer ``name`` carrying ``edge`` (input ``source``)."""
    region = edge.split_region if kind == "split" else edge.merge_region
    derivative = grad_name(*edge.source) in graph
    widths = {F: region.chunks, **({CD: region.chunks} if derivative else {})}
    return {"name": name, "type": kind, "slots": 1, "trainable": False, "learns": False,
            "derivative": derivative, "inplace": "none", "inputs": [source],
            "placeholder": False, "is_loss": False,
            "outputs": [list(graph.nodes[out_name(*edge.source)]["shape"])],
            "props": {"name": name, "batch": graph.graph["batch"]},
            "chunks": region.chunks, "widths": widths}


def describe_split(graph: nx.DiGraph) -> str:
    """The regions and unit splits of a split graph in one line, ``off`` when it has none."""
    parts = [f"{a}..{b} x{k}" for a, b, k in graph.graph.get("split") or ()]
    parts += [f"{n} units x{k}" for n, k in graph.graph.get("split_units") or ()]
    return ", ".join(parts) or "off"


__all__ = ["InvalidSplit", "Region", "Splits", "chunk_bounds", "describe_split",
           "resolve_regions", "split_graph"]


def graph_for(graph: nx.DiGraph, plan) -> nx.DiGraph:
    """The graph ``plan`` was made for: ``graph`` itself, or — when the plan splits steps and
    ``graph`` is the unsplit graph it names — its split graph (``resplit``)."""
    return resplit(graph, getattr(plan, "split", None))


def resplit(graph: nx.DiGraph, record) -> nx.DiGraph:
    """``graph`` split as a SplitRecord says, when it is the unsplit graph the record names;
    else ``graph`` itself."""
    if record is None or fingerprint(graph) != record.unsplit:
        return graph
    return split_graph(graph, {(a, b): k for a, b, k in record.regions}, dict(record.units))
