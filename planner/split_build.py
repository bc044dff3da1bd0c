"""The data a split graph is built from (planner/split.py): regions, the edges crossing their
boundaries, the builds of the model at each chunk's batch, and how split tensors and ops are
named (names are only identities: nothing parses them back)."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from trainplan.planner.build import build_training_graph
from trainplan.planner.errors import TrainplanError
from trainplan.planner.graph import Chunk, add_op
from trainplan.planner.spec import LayerDef, ModelSpec


class InvalidSplit(TrainplanError):
    """A split that cannot be made: unknown or misordered layers, overlapping regions, a loss
    or an unsplittable layer inside a region, a chunk count outside [2, batch], an
    NNTrainer-compatible graph."""


def piece_name(name: str, k: int) -> str:
    """The name of chunk ``k``'s tensor or op standing for the unsplit ``name``."""
    return f"{name}#{k}"


def version_name(tensor: str, k: int) -> str:
    """The version of ``tensor`` that chunk ``k``'s op writes (``tensor`` itself for k = 0):
    a tensor built up chunk by chunk is one buffer written in place, version after version."""
    return tensor if k == 0 else f"{tensor}@chunk{k}"


@dataclass(frozen=True)
class Region:
    """Layers ``first`` .. ``last`` run in ``chunks`` chunks of the rows ``bounds``."""

    first: str
    last: str
    chunks: int
    layers: tuple[str, ...]
    bounds: tuple[tuple[int, int], ...]


def chunk_bounds(batch: int, chunks: int) -> tuple[tuple[int, int], ...]:
    """Row ranges of ``chunks`` chunks of ``batch`` samples, the larger chunks first.

    >>> chunk_bounds(5, 2)
    ((0, 3), (3, 5))
    """
    base, extra = divmod(batch, chunks)
    out, start = [], 0
    for k in range(chunks):
        stop = start + base + (k < extra)
        out.append((start, stop))
        start = stop
    return tuple(out)


def model_spec(graph: nx.DiGraph, batch: int) -> ModelSpec:
    """The model of a training graph again, from its layer records, at another batch."""
    layers = []
    for r in graph.graph["layers"]:
        props = {k: v for k, v in r["props"].items() if k not in ("name", "batch")}
        inputs = tuple(f"{src}({k})" if k else src for src, k in r["inputs"])
        layers.append(LayerDef(r["name"], r["type"], props, inputs, r["trainable"]))
    return ModelSpec(graph.graph["model"], tuple(layers), batch, graph.graph["optimizer"])


@dataclass
class Edge:
    """One layer output read across a region boundary: ``merge`` gathers the chunks of a
    region's output into the full tensor, ``split`` cuts a full tensor into a region's chunks
    (a merge then a split between two regions)."""

    source: tuple[str, int]
    consumer: str
    merge: str | None = None
    split: str | None = None
    merge_region: Region | None = None
    split_region: Region | None = None


@dataclass
class SplitBuild:
    """What building a split graph reads and writes: the unsplit graph, the split one, the
    regions, the layer records, the boundary edges, the unit-split layers, how tensors are
    renamed and read, and the builds at each chunk size."""

    graph: nx.DiGraph
    out: nx.DiGraph
    region_of: dict[str, Region]
    records: dict[str, dict]
    edges: list[Edge]
    units: dict[str, int] = field(default_factory=dict)
    read_as: dict[str, str] = field(default_factory=dict)
    name_as: dict[str, str] = field(default_factory=dict)
    final: dict[str, str] = field(default_factory=dict)
    built: dict[int, nx.DiGraph] = field(default_factory=dict)
    pending: list[tuple[str, dict]] = field(default_factory=list)
    _by_layer: dict[int, dict[str, list[str]]] = field(default_factory=dict)

    def renamed(self, tensor: str) -> str:
        """The split graph's name of an unsplit tensor that stays whole (a region's output
        read outside is the merge layer's)."""
        return self.name_as.get(tensor, tensor)

    def read_name(self, tensor: str) -> str:
        """The tensor an op outside the regions reads for the unsplit ``tensor``: the last
        version of one built up chunk by chunk."""
        name = self.read_as.get(tensor, self.renamed(tensor))
        return self.final.get(name, name)

    def op(self, name: str, **attrs) -> None:
        """An op of the split graph, added once every tensor is (``add_ops``)."""
        self.pending.append((name, attrs))

    def add_ops(self) -> None:
        for name, attrs in self.pending:
            add_op(self.out, name, **attrs)
        self.pending.clear()

    def tensors_of(self, graph: nx.DiGraph, layer: str) -> list[str]:
        """The tensors of ``layer`` in ``graph`` (the unsplit graph or a chunk-sized build)."""
        index = self._by_layer.get(id(graph))
        if index is None:
            index = self._by_layer[id(graph)] = {}
            for t, d in graph.nodes(data=True):
                if d["kind"] == "tensor":
                    index.setdefault(d["layer"], []).append(t)
        return index.get(layer, [])

    def chunk_graph(self, region: Region, k: int) -> nx.DiGraph:
        """The model built at chunk ``k``'s batch (one build per chunk size)."""
        start, stop = region.bounds[k]
        if stop - start not in self.built:
            self.built[stop - start] = build_training_graph(
                model_spec(self.graph, stop - start), inplace=self.graph.graph["inplace"])
        return self.built[stop - start]

    def chunk(self, region: Region, k: int, whole: str | None = None) -> Chunk:
        """Chunk ``k`` of ``region`` (rows of the batch); ``whole``: the tensor it cuts."""
        start, stop = region.bounds[k]
        return Chunk(k, region.chunks, start, stop, self.graph.graph["batch"], 0, whole)

    def edge_from(self, source: tuple[str, int]) -> Edge:
        """The boundary edge carrying layer output ``source``."""
        return next(e for e in self.edges if e.source == source)
