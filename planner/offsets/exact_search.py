"""A MiniMalloc-style decision procedure: can every buffer be placed below a height ``H``?

The ideas are those of MiniMalloc (Moffitt, ASPLOS 2023; google/minimalloc ``solver.cc`` and
``sweeper.cc``), re-implemented here over numpy arrays:

* **Sweep into sections.** The distinct start/end times cut time into *sections*: intervals on
  which the set of live buffers is fixed. A buffer covers a contiguous run of sections, and two
  buffers conflict exactly when their runs intersect.
* **Canonical solutions only.** Any plan can be pushed down until each buffer rests on a buffer
  below it (or on 0), rounded up to its alignment. Listing such a plan by (offset, preorder
  rank) gives a sequence in which every buffer sits at its *minimum offset*: the highest top of
  the already placed buffers it conflicts with. The search builds exactly these sequences: it
  picks the next buffer among the unplaced ones, places it at its minimum offset, and only
  accepts (offset, rank) pairs that do not decrease, so each canonical plan is met once.
* **Cross-section inference.** In every section the unplaced buffers are all live together, so
  they need their total size above the section's *floor*: the lowest minimum offset among them
  (and never below the last placed offset, since offsets do not decrease). A partial placement
  is pruned as soon as some section's floor plus its unplaced total exceeds ``H``.
* **Dominance.** A buffer is never placed at or above the lowest possible top of an unplaced
  buffer: that buffer would fit in the gap below, so a plan without the gap is not worse.
* **Decomposition at cut points.** Between two sections that no unplaced buffer crosses, the two
  sides no longer interact; they are solved one after the other, and a side that fails makes
  the whole choice fail without re-searching the other side. Cut points present from the start
  (common in training graphs) split the problem before any search.
* **Restarts with static preorders.** Ties between buffers at the same minimum offset are
  broken by a static preorder (MiniMalloc's ``WAT``, ``TAW``, ``TWA``: lifespan Width, Area,
  section Total, all descending); the search round-robins these orders under a node limit that
  doubles each round, so one unlucky order cannot stall it.

The search is complete: with no node or time limit it either finds a plan or proves none exists
below ``H``.

>>> import numpy as np
>>> lay = build_layout(np.array([0, 1, 2]), np.array([2, 3, 4]))
>>> size, align = np.array([4, 4, 8]), np.ones(3, dtype=np.int64)
>>> decide(lay, size, align, 12, deadline=float("inf"))[0] == FOUND
True
>>> decide(lay, size, align, 11, deadline=float("inf"))[0] == EXHAUSTED
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from planner.offsets.exact_layout import HEURISTICS, Layout, build_layout, preorder

__all__ = ["FOUND", "EXHAUSTED", "ABORTED", "TIMEOUT", "build_layout", "decide", "descend"]

FOUND, EXHAUSTED, ABORTED, TIMEOUT = "found", "exhausted", "aborted", "timeout"
_BIG = np.iinfo(np.int64).max // 4


class _Search:
    """One depth-first search for height ``height`` under one preorder and a node limit."""

    def __init__(self, lay: Layout, size, align, pre, height: int, deadline: float, limit: int):
        self.lay, self.size, self.align, self.pre = lay, size, align, pre
        self.height, self.deadline, self.limit = height, deadline, limit
        self.aligned = bool((align > 1).any())
        n, s = len(size), lay.n_sections
        self.off = np.full(n, -1, dtype=np.int64)
        self.solution = np.zeros(n, dtype=np.int64)
        self.min_off = np.zeros(n, dtype=np.int64)
        self.total = np.add.reduceat(size[lay.members], lay.ptr[:-1]) if s else np.zeros(0)
        self.cuts = lay.cuts.copy()
        self.nodes = 0
        self.failed: dict[tuple[int, int], tuple[int, int]] = {}
        self.pre_list, self.size_list = pre.tolist(), size.tolist()

    def run(self) -> str:
        """Search every initial partition; FOUND leaves the plan in ``self.solution``."""
        if self.lay.n_sections == 0:
            return FOUND
        if int(self.size.max()) > self.height or int(self.total.max()) > self.height:
            return EXHAUSTED
        cuts = (np.flatnonzero(self.cuts == 0) + 1).tolist()
        everything = np.arange(len(self.size))
        return self._split(everything, 0, self.lay.n_sections, cuts, 0, -1)

    def _split(self, part, p0: int, p1: int, cuts: list[int], last: int, rank: int) -> str:
        """Solve the independent sides of ``[p0, p1)`` cut at ``cuts``, one after the other."""
        lay, bounds = self.lay, [p0, *cuts, p1]
        for a, z in zip(bounds, bounds[1:]):
            sub = part[(self.off[part] < 0) & (lay.s0[part] < z) & (lay.s1[part] > a)]
            if sub.size:
                result = self._search(sub, a, z, last, rank)
                if result != FOUND:
                    return result
        return FOUND

    def _search(self, part, p0: int, p1: int, last: int, rank: int) -> str:
        """A DFS node: prune by inference or memo, else try every canonical, undominated move."""
        self.nodes += 1
        if not self.nodes & 255:
            if self.nodes > self.limit:
                return ABORTED
            if time.perf_counter() > self.deadline:
                return TIMEOUT
        free = part[self.off[part] < 0]
        if not free.size:
            return FOUND
        lows = self.min_off[free]
        key = (hash(free.tobytes()), hash(lows.tobytes()))
        seen = self.failed.get(key)
        if seen is not None and seen <= (last, rank):
            return EXHAUSTED  # the same residual problem failed under a weaker bound
        result = EXHAUSTED
        if self._sections_fit(free, lows, p0, p1, last, rank):
            result = self._branch(part, free, lows, p0, p1, last, rank)
        if result == EXHAUSTED and (seen is None or (last, rank) < seen):
            self.failed[key] = (last, rank)
        return result

    def _branch(self, part, free, lows, p0: int, p1: int, last: int, rank: int) -> str:
        """Place each candidate in (minimum offset, rank) order; stop at the first success."""
        min_top = int((lows + self.size[free]).min())  # dominance: nothing starts at/above it
        for j in np.lexsort((self.pre[free], lows)).tolist():
            b, low = int(free[j]), int(lows[j])
            if low >= min_top:
                break
            if low < last or (low == last and self.pre_list[b] < rank):
                continue  # not canonical: this plan is listed in another order
            if low + self.size_list[b] > self.height:
                continue
            result = self._try(b, low, part, p0, p1)
            if result != EXHAUSTED:
                return result
        return EXHAUSTED

    def _try(self, b: int, low: int, part, p0: int, p1: int) -> str:
        """Place ``b`` at ``low`` and recurse, splitting at the cut points this opens."""
        raised, old_min = self._place(b, low)
        result = EXHAUSTED
        if not raised.size or int((self.min_off[raised] + self.size[raised]).max()) <= self.height:
            s0, s1 = int(self.lay.s0[b]), int(self.lay.s1[b])
            new_cuts = (np.flatnonzero(self.cuts[s0:s1 - 1] == 0) + s0 + 1).tolist()
            if new_cuts:
                result = self._split(part, p0, p1, new_cuts, low, self.pre_list[b])
            else:
                result = self._search(part, p0, p1, low, self.pre_list[b])
        self._unplace(b, raised, old_min)
        return result

    def _place(self, b: int, low: int) -> tuple[np.ndarray, np.ndarray]:
        """Fix ``b`` at ``low``: raise conflicting minimum offsets, update section data."""
        lay, top = self.lay, low + self.size_list[b]
        self.off[b] = low
        self.solution[b] = low
        nbrs = lay.nbrs[b]
        raised = nbrs[(self.off[nbrs] < 0) & (self.min_off[nbrs] < top)]
        old_min = self.min_off[raised]
        if self.aligned:
            step = self.align[raised]
            self.min_off[raised] = -(-top // step) * step
        else:
            self.min_off[raised] = top
        s0, s1 = int(lay.s0[b]), int(lay.s1[b])
        self.total[s0:s1] -= self.size_list[b]
        self.cuts[s0:s1 - 1] -= 1
        return raised, old_min

    def _unplace(self, b: int, raised: np.ndarray, old_min: np.ndarray) -> None:
        """Reverse ``_place``."""
        self.min_off[raised] = old_min
        s0, s1 = int(self.lay.s0[b]), int(self.lay.s1[b])
        self.total[s0:s1] += self.size_list[b]
        self.cuts[s0:s1 - 1] += 1
        self.off[b] = -1

    def _sections_fit(self, free, lows, p0: int, p1: int, last: int, rank: int) -> bool:
        """Cross-section inference: each section's unplaced buffers must stack below ``height``.

        The unplaced buffers of a section are all live together, so they stack; each starts no
        lower than its *release*: its minimum offset, never below ``last``, and above ``last``
        when it may no longer go at its minimum offset (it would come before ``(last, rank)``,
        so a buffer placed later must lift it first). Stacking jobs with release dates on one
        machine ends at best at max over u of (release_u + sizes released at or after it), and
        that must fit ``height``. MiniMalloc checks the weaker lowest release + all sizes.
        """
        stuck = (lows < last) | ((lows == last) & (self.pre[free] < rank))
        release = self.min_off.copy()
        release[free] = np.maximum(lows, last)
        release[free[stuck]] = last + 1
        ptr = self.lay.ptr
        members = self.lay.members[ptr[p0]:ptr[p1]]
        sections = self.lay.member_section[ptr[p0]:ptr[p1]]
        keep = self.off[members] < 0
        members, sections = members[keep], sections[keep]
        rel = release[members]
        order = np.argsort(sections * (self.height + 2) - rel, kind="stable")
        sections, rel, sizes = sections[order], rel[order], self.size[members[order]]
        above = np.cumsum(sizes)
        group_start = np.flatnonzero(np.r_[True, sections[1:] != sections[:-1]])
        base = np.repeat(above[group_start] - sizes[group_start], np.diff(np.r_[group_start,
                                                                               len(sizes)]))
        return int((rel + above - base).max()) <= self.height


def decide(
    lay: Layout, size: np.ndarray, align: np.ndarray, height: int, *, deadline: float,
    first_limit: int | None = None,
) -> tuple[str, np.ndarray | None]:
    """FOUND with offsets, EXHAUSTED (proven: nothing fits), or TIMEOUT with None.

    Round-robins the static preorders under a node limit that doubles every round.
    """
    orders = [preorder(lay, size, h) for h in HEURISTICS]
    limit = first_limit or 2 * len(size)
    while True:
        for pre in orders:
            search = _Search(lay, size, align, pre, height, deadline, limit)
            result = search.run()
            if result == FOUND:
                return FOUND, search.solution.copy()
            if result in (EXHAUSTED, TIMEOUT):
                return result, None
        limit *= 2


def descend(s) -> np.ndarray:
    """A quick greedy plan: repeatedly place the buffer with the lowest minimum offset.

    Each buffer goes on top of the placed buffers it conflicts with, so the plan is valid; it
    serves as a warm start when no greedy planner is registered.
    """
    lay = build_layout(s.start, s.end)
    n = s.n
    off = np.full(n, -1, dtype=np.int64)
    low = np.zeros(n, dtype=np.int64)
    rank = preorder(lay, s.size, HEURISTICS[0]) if n else np.zeros(0, dtype=np.int64)
    for _ in range(n):
        free = np.flatnonzero(off < 0)
        b = int(free[np.lexsort((rank[free], low[free]))[0]])
        off[b] = low[b]
        nbrs = lay.nbrs[b]
        top = off[b] + s.size[b]
        step = s.align[nbrs]
        low[nbrs] = np.maximum(low[nbrs], -(-top // step) * step)
    return off
