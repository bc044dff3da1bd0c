"""Which graph a plan belongs to: a fingerprint of the training graph's structure.

Two graphs get the same fingerprint exactly when they have the same tensors (shape, dtype,
role, pool, alias), the same ops (layer, step, type, flops) and the same read and write edges,
so a plan made for one is valid for the other. A plan for another model, batch, optimizer or
option set gets a different one, and ``GraphIdentity.describe`` names which.

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.zoo import get_model
>>> a = graph_identity(build_training_graph(get_model("mlp", batch=4)))
>>> b = graph_identity(build_training_graph(get_model("mlp", batch=8)))
>>> a.fingerprint == b.fingerprint, mismatch(a, b)
(False, "model 'mlp' (batch 4, optimizer adam), not model 'mlp' (batch 8, optimizer adam)")
"""

from __future__ import annotations

import hashlib
import json

import networkx as nx

from trainplan.planner.training_plan import GraphIdentity

_TENSOR_KEYS = ("shape", "dtype", "role", "pool", "alias")
_OP_KEYS = ("layer", "step", "op_type", "flops")


def fingerprint(graph: nx.DiGraph) -> str:
    """A SHA-256 (hex, 16 digits) of the graph's structure, independent of insertion order."""
    nodes = []
    for name, data in graph.nodes(data=True):
        keys = _TENSOR_KEYS if data.get("kind") == "tensor" else _OP_KEYS
        nodes.append([name, data.get("kind"), [_plain(data.get(k)) for k in keys]])
    text = json.dumps([sorted(nodes), sorted(graph.edges)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def graph_identity(graph: nx.DiGraph) -> GraphIdentity:
    """The identity a plan of ``graph`` records (its build options and fingerprint)."""
    g = graph.graph
    return GraphIdentity(model=g.get("model", ""), batch=int(g.get("batch", 0)),
                         optimizer=g.get("optimizer", ""), fingerprint=fingerprint(graph),
                         compat=bool(g.get("compat", False)),
                         inplace=bool(g.get("inplace", True)),
                         freeze_until=g.get("freeze_until"), source=dict(g.get("source", {})))


def mismatch(planned: GraphIdentity, given: GraphIdentity) -> str | None:
    """None when both are the same graph, else a sentence naming both."""
    if planned.fingerprint == given.fingerprint:
        return None
    a, b = planned.describe(), given.describe()
    if a == b:
        b += f": the same options but another structure (fingerprint {given.fingerprint}, " \
             f"the plan's {planned.fingerprint})"
    return f"{a}, not {b}"
