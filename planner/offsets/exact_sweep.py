"""Exact search for *full* problems: every time section has exactly ``H`` units live.

When each section's live bytes equal the target height ``H``, a plan of height ``H`` leaves no
byte unused at any time. Then at every boundary between two sections the bytes freed by the
buffers that end are exactly the bytes taken by the buffers that start: the starters *tile* the
freed regions. This module searches in time order instead of address order:

* **Sweep in time.** At each boundary the freed address intervals (the ending buffers' bytes,
  merged where they touch) are tiled by the starting buffers, filling the lowest free address
  first and branching over which starter goes there (starters of equal size, end and alignment
  are interchangeable, so only one of each kind is tried).
* **Boundary inference (look-ahead).** As soon as every buffer that ends at a later boundary
  is placed, the bytes that boundary will free are known, and its starters must partition
  them exactly: a small subset-sum partition check, run long before the sweep gets there.
* **Memo of failed boundaries.** What happens after a boundary depends only on where the
  buffers crossing it sit; a failed crossing is remembered, which also makes cut points (no
  buffer crosses) decompose the problem.

It is complete for full problems and answers in milliseconds on most perfect packings, where
address-ordered search detects a wrong choice only much later. ``is_full`` tells whether it
applies.

>>> import numpy as np
>>> from planner.offsets.exact_layout import build_layout
>>> lay = build_layout(np.array([0, 0, 1, 1]), np.array([1, 2, 2, 2]))
>>> size = np.array([2, 2, 1, 1])
>>> is_full(lay, size, 4)
True
>>> result, offsets = sweep_decide(lay, size, np.ones(4, dtype=np.int64), 4, deadline=1e18)
>>> result
'found'
"""

from __future__ import annotations

import sys
import time

import numpy as np

from planner.offsets.exact_layout import Layout

FOUND, EXHAUSTED, TIMEOUT = "found", "exhausted", "timeout"


def is_full(lay: Layout, size: np.ndarray, height: int) -> bool:
    """True when every section holds exactly ``height`` units live (the sweep applies)."""
    if not lay.n_sections:
        return False
    load = np.add.reduceat(size[lay.members], lay.ptr[:-1])
    return bool((load == height).all())


def sweep_decide(
    lay: Layout, size: np.ndarray, align: np.ndarray, height: int, *, deadline: float
) -> tuple[str, np.ndarray | None]:
    """FOUND with offsets, EXHAUSTED (no plan of height ``height``) or TIMEOUT with None."""
    sweep = _Sweep(lay, size, align, height, deadline)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * len(size) + 1000))
    try:
        result = sweep.boundary(0)
    finally:
        sys.setrecursionlimit(limit)
    return result, (sweep.off.copy() if result == FOUND else None)


class _Sweep:
    """Depth-first tiling of each boundary's freed bytes by its starters (see module doc)."""

    def __init__(self, lay: Layout, size, align, height: int, deadline: float):
        self.lay, self.height, self.deadline = lay, height, deadline
        self.size, self.align = size.tolist(), align.tolist()
        self.s1 = lay.s1.tolist()
        n_bounds = lay.n_sections + 1
        order = np.argsort(-size, kind="stable")  # large starters first: fail early
        self.starters = [[] for _ in range(n_bounds)]
        self.enders = [[] for _ in range(n_bounds)]
        for b in order.tolist():
            self.starters[int(lay.s0[b])].append(b)
            self.enders[self.s1[b]].append(b)
        self.crossing = [
            np.flatnonzero((lay.s0 < k) & (lay.s1 > k)) for k in range(n_bounds)
        ]
        self.pending = [len(e) for e in self.enders]  # unplaced enders per boundary
        self.off = np.full(len(size), -1, dtype=np.int64)
        self.failed: set[tuple[int, bytes]] = set()
        self.nodes = 0

    def boundary(self, k: int) -> str:
        """Tile the bytes free at boundary ``k`` with its starters, then move on."""
        if k >= self.lay.n_sections:
            return FOUND
        key = (k, self.off[self.crossing[k]].tobytes())
        if key in self.failed:
            return EXHAUSTED
        free = self._freed(k)
        if not _partitions(free, [self.size[b] for b in self.starters[k]]):
            result = EXHAUSTED
        else:
            result = self._fill(k, free, list(self.starters[k]))
        if result == EXHAUSTED:
            self.failed.add(key)
        return result

    def _freed(self, k: int) -> list[tuple[int, int]]:
        """Free intervals at boundary ``k``: the merged bytes of the buffers ending there."""
        if k == 0:
            return [(0, self.height)]
        spans = sorted((int(self.off[b]), int(self.off[b]) + self.size[b]) for b in self.enders[k])
        merged: list[list[int]] = []
        for a, z in spans:
            if merged and merged[-1][1] == a:
                merged[-1][1] = z
            else:
                merged.append([a, z])
        return [(a, z) for a, z in merged]

    def _fill(self, k: int, free: list[tuple[int, int]], todo: list[int]) -> str:
        """Place a starter at the lowest free address, in every distinct way."""
        self.nodes += 1
        if not self.nodes & 255 and time.perf_counter() > self.deadline:
            return TIMEOUT
        if not todo:
            return self.boundary(k + 1)
        a, z = free[0]
        tried = set()
        for i, b in enumerate(todo):
            kind = (self.size[b], self.s1[b], self.align[b])
            if kind in tried or self.size[b] > z - a or a % self.align[b]:
                continue
            tried.add(kind)
            result = self._place(k, b, a, free, todo[:i] + todo[i + 1:])
            if result != EXHAUSTED:
                return result
        return EXHAUSTED

    def _place(self, k: int, b: int, a: int, free, rest: list[int]) -> str:
        """Put starter ``b`` at ``a``; check the boundary it completes; continue filling."""
        self.off[b] = a
        end = self.s1[b]
        self.pending[end] -= 1
        result = EXHAUSTED
        if self.pending[end] or self._lookahead(end):
            z = free[0][1]
            rest_free = ([(a + self.size[b], z)] if a + self.size[b] < z else []) + free[1:]
            result = self._fill(k, rest_free, rest)
        self.pending[end] += 1
        self.off[b] = -1
        return result

    def _lookahead(self, end: int) -> bool:
        """All buffers ending at ``end`` are placed: can its starters tile what they free?"""
        if end >= self.lay.n_sections:
            return True
        return _partitions(self._freed(end), [self.size[b] for b in self.starters[end]])


def _partitions(free: list[tuple[int, int]], sizes: list[int], budget: int = 2000) -> bool:
    """Can ``sizes`` be split into groups whose sums are the free interval lengths?

    A necessary check (alignment is ignored); gives up (answers True) after ``budget`` steps.
    """
    bins = sorted((z - a for a, z in free), reverse=True)
    items = sorted(sizes, reverse=True)
    if sum(bins) != sum(items) or (items and items[0] > bins[0]):
        return False
    if len(bins) == 1:
        return True
    steps = [budget]
    return _fill_bins(bins, items, 0, [False] * len(items), steps)


def _fill_bins(bins: list[int], items: list[int], start: int, used: list[bool], steps) -> bool:
    """Depth-first: fill ``bins[0]`` exactly from unused items (largest first), then the rest."""
    if not bins:
        return True
    if bins[0] == 0:
        return _fill_bins(bins[1:], items, 0, used, steps)
    steps[0] -= 1
    if steps[0] < 0:
        return True
    last = None
    for i in range(start, len(items)):
        if used[i] or items[i] > bins[0] or items[i] == last:
            continue
        last = items[i]
        used[i] = True
        ok = _fill_bins([bins[0] - items[i], *bins[1:]], items, i + 1, used, steps)
        used[i] = False
        if ok:
            return True
    return False
