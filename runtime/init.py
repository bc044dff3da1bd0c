"""Initial values of every persistent buffer, the same for every layout given the seed (or
the model's own, when it brought them)."""

from __future__ import annotations

import math
import zlib

import networkx as nx
import numpy as np


def initial_value(graph: nx.DiGraph, root: str, seed: int) -> np.ndarray:
    """The model's own value where it brought one (an imported module's parameters,
    ``graph.graph["initial_weights"]``); otherwise Glorot-uniform matrices and filters, zero
    biases, betas, means and optimizer state, unit gammas and variances, drawn from a generator
    keyed by seed and tensor name. A block of a weight split over its units
    (planner/split_units.py) gets its slice of the whole."""
    data = graph.nodes[root]
    chunk = data.get("chunk")
    if chunk is not None and chunk.whole is not None:
        shape = list(data["shape"])
        shape[chunk.axis] = chunk.total
        whole = _whole(graph, chunk.whole, tuple(shape), data, seed)
        return np.ascontiguousarray(
            whole[(slice(None),) * chunk.axis + (slice(chunk.start, chunk.stop),)])
    return _whole(graph, root, data["shape"], data, seed)


def _whole(graph: nx.DiGraph, name: str, shape: tuple[int, ...], data: dict,
           seed: int) -> np.ndarray:
    imported = graph.graph.get("initial_weights") or {}
    if name in imported:
        return np.array(imported[name], dtype=np.float32)
    return _initial(shape, data["role"], data["slot"].key, name, seed)


def _initial(shape: tuple[int, ...], role: str, name: str, root: str, seed: int) -> np.ndarray:
    if role == "optimizer_state" or name in ("bias", "beta", "moving_mean", "bias_h") \
            or name.endswith("_bias"):
        return np.zeros(shape, dtype=np.float32)
    if name in ("gamma", "moving_variance"):
        return np.ones(shape, dtype=np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(root.encode())])
    if len(shape) == 4:  # conv filter (out, in/groups, kh, kw)
        fan_in, fan_out = math.prod(shape[1:]), shape[0] * shape[2] * shape[3]
    elif len(shape) >= 2:
        fan_in, fan_out = shape[0], math.prod(shape[1:])
    else:
        fan_in = fan_out = shape[0]
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)
