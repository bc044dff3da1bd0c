"""Where every tensor lives: one preallocated arena at planned offsets, or (the unplanned
reference) one array per buffer.

Both layouts hand out numpy views; tensors of one alias class (views, in-place results) share
their root's bytes in both, so a planned run and the reference run execute the same kernels on
the same values. Every buffer starts on a 64-byte boundary in both, so SIMD code takes the same
path and the two runs give the same bits.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from trainplan.planner.graph import DTYPE_BYTES, alias_root, tensors

ALIGN = 64


def aligned_bytes(nbytes: int) -> np.ndarray:
    """A zeroed uint8 array of ``nbytes`` starting on an ``ALIGN``-byte boundary."""
    raw = np.zeros(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


def tensor_view(memory: np.ndarray, offset: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The tensor of ``shape`` and ``dtype`` whose bytes start at ``memory[offset]``."""
    n = math.prod(shape) * DTYPE_BYTES[dtype]
    return memory[offset:offset + n].view(np.dtype(dtype)).reshape(shape)


class StaticLayout:
    """Every tensor at a fixed place for the whole iteration (no swapping)."""

    def __init__(self, graph: nx.DiGraph, memory: dict[str, tuple[np.ndarray, int]],
                 arena_bytes: int):
        self.graph = graph
        self.arena_bytes = arena_bytes
        self._views = {}
        for t in tensors(graph):
            root = alias_root(graph, t)
            if root in memory:
                mem, off = memory[root]
                data = graph.nodes[t]
                self._views[t] = tensor_view(mem, off, data["shape"], data["dtype"])

    def view(self, tensor: str, eo: int | None = None) -> np.ndarray:
        return self._views[tensor]

    def has(self, tensor: str) -> bool:
        return tensor in self._views


def planned_layout(graph: nx.DiGraph, offsets: dict[str, int], arena_bytes: int) -> StaticLayout:
    """One arena of ``arena_bytes``; buffer roots at ``offsets`` (weights and tensors alike)."""
    arena = aligned_bytes(arena_bytes)
    return StaticLayout(graph, {root: (arena, off) for root, off in offsets.items()},
                        arena_bytes)


def reference_layout(graph: nx.DiGraph, roots: dict[str, int]) -> StaticLayout:
    """Each buffer (root -> nbytes) its own aligned array: the unplanned run."""
    memory = {root: (aligned_bytes(n), 0) for root, n in roots.items()}
    return StaticLayout(graph, memory, sum(roots.values()))
