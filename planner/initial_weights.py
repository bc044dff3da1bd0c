"""Initial weights a model brings with it (an imported PyTorch module's parameters, an ONNX
file's initializers), keyed by the graph's weight tensor: ``"<layer>:<weight>"``.

A ``WeightTable`` rides on the ModelSpec and, checked against the built graph, on the training
graph (``graph.graph["initial_weights"]``), where the runtime's initialisation takes a weight
from it instead of drawing one (runtime/init.py). Arrays are float32 in trainplan's layouts
(planner/layers: a fully-connected weight is (in, out), a filter (out, in / groups, kh, kw)).

>>> table = WeightTable({"fc:weight": np.ones((3, 2))})
>>> table
WeightTable(1 tensors, 6 values)
>>> table["fc:weight"].dtype
dtype('float32')
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import networkx as nx
import numpy as np

from trainplan.planner.errors import InvalidGraph


class WeightTable(Mapping):
    """Read-only ``{"<layer>:<weight>": float32 array}``; its repr stays one short line, so
    graphs that carry it print and export as before."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self._arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        for a in self._arrays.values():
            a.flags.writeable = False

    def __getitem__(self, key: str) -> np.ndarray:
        return self._arrays[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        values = sum(a.size for a in self._arrays.values())
        return f"WeightTable({len(self)} tensors, {values} values)"

    __str__ = __repr__


def check_weights(table: Mapping[str, np.ndarray], graph: nx.DiGraph) -> None:
    """Every entry names a weight tensor of ``graph`` and has its shape (InvalidGraph naming
    the first that does not)."""
    for name, array in table.items():
        data = graph.nodes.get(name)
        if data is None or data.get("role") != "weight":
            raise InvalidGraph(f"initial weight {name!r} is not a weight of the model; its "
                               "layer or weight name does not match the graph", name)
        if tuple(array.shape) != tuple(data["shape"]):
            raise InvalidGraph(f"initial weight {name!r} has shape {tuple(array.shape)}, the "
                               f"graph's tensor {tuple(data['shape'])}", name)
