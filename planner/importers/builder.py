"""What the PyTorch and ONNX importers share: a ModelSpec assembled layer by layer with the
weights it brings, unique layer names, the loss, and the error for an operator we cannot map."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from trainplan.planner.errors import TrainplanError
from trainplan.planner.initial_weights import WeightTable
from trainplan.planner.spec import LayerDef, ModelSpec

DEFAULT_BATCH = 32


class UnsupportedOperator(TrainplanError):
    """An operator (or a setting of one) that no trainplan layer computes; the message names
    it, the node and the source line where known, and what is supported."""


def unsupported(op: str, node: str, where: str | None, supported, why: str = "") -> \
        UnsupportedOperator:
    place = f"node {node!r}" + (f", {where}" if where else "")
    reason = f": {why}" if why else " is not supported"
    return UnsupportedOperator(f"{op} ({place}){reason}; supported: "
                               + ", ".join(sorted(supported)))


@dataclass
class SpecBuilder:
    """Layers (mutable until ``spec``), their initial weights and where each came from."""

    name: str
    layers: list = field(default_factory=list)  # [name, type, props, inputs]
    weights: dict = field(default_factory=dict)  # "<layer>:<weight>" -> array
    sources: dict = field(default_factory=dict)  # "<layer>:<weight>" -> the framework's name
    _names: set = field(default_factory=set)

    def unique(self, base: str) -> str:
        """``base`` made a valid, unused layer name (``base_1``, ``base_2`` ... on a clash)."""
        base = re.sub(r"[():,\s]", "_", base) or "layer"
        name, n = base, 0
        while name in self._names:
            n += 1
            name = f"{base}_{n}"
        self._names.add(name)
        return name

    def add(self, base: str, layer_type: str, inputs, weights: dict | None = None,
            sources: dict | None = None, **props) -> str:
        """Append a layer reading ``inputs`` (refs); ``weights``: weight name -> array in our
        layout, ``sources``: weight name -> the framework's name. Returns the layer's name."""
        name = self.unique(base)
        self.layers.append([name, layer_type, props, tuple(inputs)])
        for w, array in (weights or {}).items():
            self.weights[f"{name}:{w}"] = np.asarray(array, dtype=np.float32)
        for w, source in (sources or {}).items():
            self.sources[f"{name}:{w}"] = source
        return name

    def layer(self, name: str) -> list:
        return next(x for x in self.layers if x[0] == name)

    def spec(self, batch: int | None, description: str, meta: dict) -> ModelSpec:
        layers = tuple(LayerDef(n, t, p, i) for n, t, p, i in self.layers)
        return ModelSpec(self.name, layers, DEFAULT_BATCH if batch is None else batch, "adam",
                         description, {**meta, "weight_sources": dict(self.sources)},
                         WeightTable(self.weights))
