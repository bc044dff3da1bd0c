"""A MiniMalloc-style decision procedure: can every buffer be placed below a height ``H``?

The ideas follow MiniMalloc (Moffitt, ASPLOS 2023; google/minimalloc ``solver.cc`` and
``sweeper.cc``), re-implemented over numpy arrays, with a different branching rule:

* **Sweep into sections** (``exact_layout``): the distinct start/end times cut time into
  *sections* on which the set of live buffers is fixed; a buffer covers a contiguous run of them
  and two buffers conflict exactly when their runs intersect.
* **Canonical solutions only.** Any plan can be pushed down until each buffer rests on a
  conflicting buffer below it (or on 0), rounded up to its alignment. The search builds such
  plans bottom-up: a buffer is only ever placed at its *minimum offset* (the highest top of the
  placed buffers it conflicts with), and never below the *level*, the lowest minimum offset of
  the buffers that may still go there.
* **Branch on the tightest cell.** MiniMalloc branches on which buffer comes next; here, as in
  Knuth's dancing links, the search picks one open *cell* (a section at the level) and branches
  on what happens there: one of the buffers that can start there does, or none of them does
  (they then *wait* until a later placement lifts them). A cell that cannot stay empty is
  *forced* and has no "none" branch; forced cells, then cells with fewest candidates, go first.
  The branches partition the canonical plans, so none is met twice. Candidates whose top would
  be flush with a neighbouring section's top are tried first.
* **Cross-section inference.** In a section the unplaced buffers are live together, so they
  stack; each starts no lower than its *release* (its minimum offset, or above the level when
  it waits). Jackson's rule gives the lowest possible stack top, max over u of (release_u +
  sizes released at or after it), with sizes rounded up to the section's alignment grid for all
  but the top buffer; a section where that exceeds ``H`` prunes the node. (MiniMalloc checks the
  weaker lowest release + total.)
* **Dominance.** A waiting buffer whose lowest slot lies wholly below the level could drop into
  a gap that nothing will fill: a plan without that gap is not worse, so the node is pruned.
* **Symmetry.** Identical buffers (same span, size and alignment) are interchangeable: once one
  has failed in a cell, or been made to wait, its twins are not tried there.
* **Decomposition at cut points.** Between two sections that no unplaced buffer crosses, the
  sides no longer interact; they are solved one after the other, and a side that fails makes the
  whole choice fail without re-searching the other. Cut points present from the start (common
  in training graphs) split the problem before any search.
* **Memo and restarts.** A node's future depends only on its unplaced buffers, their minimum
  offsets and which of them wait, so failed states are remembered (and skipped when met again
  through another order). The search restarts (``Restarts``) round-robin over MiniMalloc's
  static preorders (``WAT``, ``TAW``, ``TWA``: lifespan Width, Area, section Total,
  descending; they break ties between candidates) and randomised variants of them, under a
  node limit that doubles each round, keeping the memo.

The search is complete: with no node or time limit it either finds a plan or proves that none
exists below ``H``. It is fast on full packings (every section as full as ``H``), where the
inference leaves few choices; proving that a loosely packed problem needs more than its bound
can take exponential time, which is why ``exact`` races it against CP-SAT.

>>> import numpy as np
>>> lay = build_layout(np.array([0, 1, 2]), np.array([2, 3, 4]))
>>> size, align = np.array([4, 4, 8]), np.ones(3, dtype=np.int64)
>>> decide(lay, size, align, 12, deadline=float("inf"))[0] == FOUND
True
>>> decide(lay, size, align, 11, deadline=float("inf"))[0] == EXHAUSTED
True
"""

from __future__ import annotations

import itertools
import sys
import time

import numpy as np

from trainplan.planner.offsets.exact_layout import (
    HEURISTICS,
    Layout,
    build_layout,
    perturb,
    preorder,
    section_grid,
)

__all__ = ["ABORTED", "EXHAUSTED", "FOUND", "TIMEOUT", "Restarts", "build_layout", "decide"]

FOUND, EXHAUSTED, ABORTED, TIMEOUT = "found", "exhausted", "aborted", "timeout"
_BIG = np.iinfo(np.int64).max // 4


class _Search:
    """One depth-first search for height ``height`` under one preorder and a node limit."""

    def __init__(
        self, lay: Layout, size, align, pre, height: int, deadline: float, limit: int,
        failed: set | None = None, stop=None, first_in_order: bool = False,
        heuristic: str | None = None,
    ):
        self.lay, self.size, self.align, self.pre = lay, size, align, pre.copy()
        self.first_in_order, self.heuristic = first_in_order, heuristic
        self.twin = twins(lay, size, align)
        self.height, self.deadline, self.limit, self.stop = height, deadline, limit, stop
        self.aligned = bool((align > 1).any())
        self.grid = section_grid(lay, align)
        n, s = len(size), lay.n_sections
        self.off = np.full(n, -1, dtype=np.int64)
        self.solution = np.zeros(n, dtype=np.int64)
        self.min_off = np.zeros(n, dtype=np.int64)
        self.banned = np.full(n, -1, dtype=np.int64)
        self.total = np.add.reduceat(size[lay.members], lay.ptr[:-1]) if s else np.zeros(0)
        self.cuts = lay.cuts.copy()
        self.sky = np.zeros(s + 2, dtype=np.int64)  # top per section, -1 sentinels at both ends
        self.sky[0] = self.sky[-1] = -1
        self._old_sky: list[np.ndarray] = []
        self.nodes = 0
        self.failed = set() if failed is None else failed  # states that cannot be completed

    def run(self) -> str:
        """Search every initial partition; FOUND leaves the plan in ``self.solution``."""
        if self.lay.n_sections == 0:
            return FOUND
        if int(self.size.max()) > self.height or int(self.total.max()) > self.height:
            return EXHAUSTED
        cuts = (np.flatnonzero(self.cuts == 0) + 1).tolist()
        return self._split(np.arange(len(self.size)), 0, self.lay.n_sections, cuts)

    def _split(self, part, p0: int, p1: int, cuts: list[int]) -> str:
        """Solve the independent sides of ``[p0, p1)`` cut at ``cuts``, one after the other;
        under a named heuristic each side's buffers are re-ranked by what is left unplaced
        (MiniMalloc's ``SubSolve``)."""
        lay, bounds = self.lay, [p0, *cuts, p1]
        for a, z in itertools.pairwise(bounds):
            sub = part[(self.off[part] < 0) & (lay.s0[part] < z) & (lay.s1[part] > a)]
            if sub.size:
                old = self.pre[sub]
                if self.heuristic:
                    self.pre[sub] = preorder(lay, self.size, self.heuristic, load=self.total,
                                             subset=sub)
                result = self._search(sub, a, z)
                self.pre[sub] = old
                if result != FOUND:
                    return result
        return FOUND

    def _search(self, part, p0: int, p1: int) -> str:
        """A DFS node: prune by dominance, memo or inference, else branch on the tightest cell."""
        self.nodes += 1
        if self.nodes > self.limit:
            return ABORTED
        if not self.nodes & 7 and (
                time.perf_counter() > self.deadline or (self.stop and self.stop.is_set())):
            return TIMEOUT
        free = part[self.off[part] < 0]
        if not free.size:
            return FOUND
        lows = self.min_off[free]
        stuck = lows <= self.banned[free]
        if stuck.all():
            return EXHAUSTED
        level = int(lows[~stuck].min())
        if (stuck & (lows + self.size[free] <= level)).any():
            return EXHAUSTED  # dominance: a waiting buffer fits in a gap that stays empty
        key = (hash(free.tobytes()), hash(lows.tobytes()), hash(stuck.tobytes()))
        if key in self.failed:
            return EXHAUSTED
        result = self._branch(part, p0, p1, free, lows, stuck, level)
        if result == EXHAUSTED:
            self.failed.add(key)
        return result

    def _branch(self, part, p0, p1, free, lows, stuck, level: int) -> str:
        """Pick the open cell (section, level) with fewest coverers; try each, then empty."""
        cell = self._pick_cell(p0, p1, free, lows, stuck, level)
        if cell is None:
            return EXHAUSTED
        section, forced = cell
        if self.first_in_order:
            return self._branch_first(part, p0, p1, free, lows, stuck, level)
        members = self.lay.members[self.lay.ptr[section]:self.lay.ptr[section + 1]]
        cover = members[(self.off[members] < 0) & (self.min_off[members] == level)]
        cover = cover[self.min_off[cover] > self.banned[cover]]
        tried = set()
        for b in self._value_order(cover, level):
            if self.twin[b] in tried:  # an identical buffer failed here: so would this one
                continue
            tried.add(self.twin[b])
            result = self._try(b, level, part, p0, p1)
            if result != EXHAUSTED:
                return result
        if forced:
            return EXHAUSTED
        old = self.banned[cover]
        self.banned[cover] = level  # the cell stays empty: its coverers must be lifted first
        result = self._search(part, p0, p1)
        self.banned[cover] = old
        return result

    def _branch_first(self, part, p0, p1, free, lows, stuck, level: int) -> str:
        """MiniMalloc's branching: the first candidate in the preorder goes at the level, or
        waits. A candidate with no unplaced neighbour that fails fails either way."""
        cand = free[~stuck & (lows == level)]
        b = int(cand[np.argmin(self.pre[cand])])
        nbrs = self.lay.nbrs[b]
        hatless = not (self.off[nbrs] < 0).any()
        result = self._try(b, level, part, p0, p1)
        if result != EXHAUSTED or hatless:
            return result
        waiting = cand[self.twin[cand] == self.twin[b]]  # identical ones would fail the same
        old = self.banned[waiting]
        self.banned[waiting] = level
        result = self._search(part, p0, p1)
        self.banned[waiting] = old
        return result

    def _value_order(self, cover, level: int) -> list[int]:
        """Coverers whose top would be flush with a neighbouring section's top first.

        Full packings are made of blocks whose edges line up across time, so a buffer that
        ends level with the skyline just before or after its lifetime is the likelier choice.
        """
        top = level + self.size[cover]
        flush = (self.sky[self.lay.s0[cover]] == top).astype(np.int64)
        flush += self.sky[self.lay.s1[cover] + 1] == top
        return cover[np.lexsort((self.pre[cover], -flush))].tolist()

    def _pick_cell(self, p0, p1, free, lows, stuck, level: int) -> tuple[int, bool] | None:
        """Cross-section inference, then the most constrained open cell at ``level``.

        In every section the unplaced buffers are live together, so they stack; each starts no
        lower than its *release* (its minimum offset; ``level + 1`` for a buffer that must be
        lifted first). Stacking jobs with release dates on one machine ends at best at
        max over u of (release_u + sizes released at or after it) (Jackson's rule); a section
        where that exceeds the height prunes the node. A cell that cannot stay empty (raising
        its candidates' release to ``level + 1`` breaks its section) is *forced*.
        Returns (section, forced) or None when the node is infeasible.
        """
        release = np.where(stuck, level + 1, lows)
        cand = ~stuck & (lows == level)
        ptr = self.lay.ptr
        members = self.lay.members[ptr[p0]:ptr[p1]]
        sections = self.lay.member_section[ptr[p0]:ptr[p1]]
        where = np.full(len(self.size), -1, dtype=np.int64)
        where[free] = np.arange(len(free))
        idx = where[members]
        keep = idx >= 0
        idx, sections = idx[keep], sections[keep]
        rel, is_cand = release[idx], cand[idx]
        sizes = self.size[free[idx]]
        if self._overfull(sections, rel, sizes).size:
            return None
        counts = np.bincount(sections[is_cand], minlength=self.lay.n_sections)
        open_secs = np.flatnonzero(counts)
        if not open_secs.size:
            return None
        if self.first_in_order:  # MiniMalloc's branching uses no cell
            return int(open_secs[0]), False
        raised = np.where(is_cand, level + 1, rel)
        forced = np.isin(open_secs, self._overfull(sections, raised, sizes))
        best = np.lexsort((open_secs, counts[open_secs], ~forced))[0]
        return int(open_secs[best]), bool(forced[best])

    def _overfull(self, sections, rel, sizes) -> np.ndarray:
        """Sections whose Jackson stacking height exceeds the height, for jobs (section,
        release, size) listed section by section.

        With alignments, every offset in a section is a multiple of the gcd ``g`` of its
        buffers' alignments, so each stacked buffer but the top one takes its size rounded up
        to ``g`` (``exact_layout.section_bound`` is the same bound with no releases). Only
        sections whose highest release plus total size exceeds the height can fail, so only
        their jobs are sorted.
        """
        if not len(sections):
            return sections
        pad = None
        if self.aligned:
            grid = self.grid[sections]
            rel = -(-rel // grid) * grid
            rounded = -(-sizes // grid) * grid
            pad, sizes = rounded - sizes, rounded
        is_head = np.empty(len(sections), dtype=bool)
        is_head[0] = True
        np.not_equal(sections[1:], sections[:-1], out=is_head[1:])
        heads = np.flatnonzero(is_head)
        upper = np.maximum.reduceat(rel, heads) + np.add.reduceat(sizes, heads)
        maybe = upper > self.height
        if not maybe.any():
            return sections[:0]
        pick = np.repeat(maybe, np.diff(heads, append=len(sections)))
        sections, rel, sizes = sections[pick], rel[pick], sizes[pick]
        order = np.argsort(sections * (self.height + 2) - rel, kind="stable")  # runs: fast
        sections, rel, sizes = sections[order], rel[order], sizes[order]
        above = np.cumsum(sizes)
        is_head = np.empty(len(sections), dtype=bool)
        is_head[0] = True
        np.not_equal(sections[1:], sections[:-1], out=is_head[1:])
        heads = np.flatnonzero(is_head)
        base = np.repeat(above[heads] - sizes[heads], np.diff(heads, append=len(sizes)))
        need = rel + above - base
        if pad is not None:  # the top buffer needs no rounding: take back the largest pad
            shift = (np.cumsum(is_head) - 1) * (int(pad.max()) + 1)
            need -= np.maximum.accumulate(pad[pick][order] + shift) - shift
        return sections[heads][np.maximum.reduceat(need, heads) > self.height]

    def _try(self, b: int, low: int, part, p0: int, p1: int) -> str:
        """Place ``b`` at ``low`` and recurse, splitting at the cut points this opens."""
        raised, old_min = self._place(b, low)
        result = EXHAUSTED
        if not raised.size or int((self.min_off[raised] + self.size[raised]).max()) <= self.height:
            s0, s1 = int(self.lay.s0[b]), int(self.lay.s1[b])
            new_cuts = (np.flatnonzero(self.cuts[s0:s1 - 1] == 0) + s0 + 1).tolist()
            if new_cuts:
                result = self._split(part, p0, p1, new_cuts)
            else:
                result = self._search(part, p0, p1)
        self._unplace(b, raised, old_min)
        return result

    def _place(self, b: int, low: int) -> tuple[np.ndarray, np.ndarray]:
        """Fix ``b`` at ``low``: raise conflicting minimum offsets, update section data.

        ``low`` is at least every top in ``b``'s sections, so ``b``'s top becomes their top.
        """
        lay, top = self.lay, low + int(self.size[b])
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
        self.total[s0:s1] -= int(self.size[b])
        self.cuts[s0:s1 - 1] -= 1
        self._old_sky.append(self.sky[s0 + 1:s1 + 1].copy())
        self.sky[s0 + 1:s1 + 1] = top
        return raised, old_min

    def _unplace(self, b: int, raised: np.ndarray, old_min: np.ndarray) -> None:
        """Reverse ``_place`` (the old tops of ``b``'s sections were all ``b``'s offset or less)."""
        self.min_off[raised] = old_min
        s0, s1 = int(self.lay.s0[b]), int(self.lay.s1[b])
        self.sky[s0 + 1:s1 + 1] = self._old_sky.pop()
        self.total[s0:s1] += int(self.size[b])
        self.cuts[s0:s1 - 1] += 1
        self.off[b] = -1


def twins(lay: Layout, size: np.ndarray, align: np.ndarray) -> np.ndarray:
    """A class per buffer: identical buffers (same sections, size and alignment) share one.

    Swapping two of them maps plans to plans, so once one has failed somewhere, its twins
    need not be tried there (symmetry breaking).
    """
    keys = np.stack([lay.s0, lay.s1, size, align], axis=1) if len(size) else np.zeros((0, 4))
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


class Restarts:
    """The search for one height as a series of restarts (*slices*), each under a node limit;
    states proven hopeless are remembered across all of them.

    A round of slices varies the two things that decide how long a complete search takes
    (heavy-tailed in both): the branching rule (``cell``: the tightest cell at the level, or
    ``first``: MiniMalloc's, the first candidate in the preorder goes at the level or waits)
    and the preorder (MiniMalloc's ``WAT``, ``TAW``, ``TWA``, re-ranked in every part split
    off, or one of them randomly perturbed from ``seed``).
    """

    SLICES = (("cell", "WAT"), ("first", "TWA"), ("cell", "TAW"), ("cell", None),
              ("first", None), ("first", "WAT"), ("first", "TAW"), ("cell", None))
    PER_ROUND = len(SLICES)

    def __init__(self, lay: Layout, size, align, height: int, *, seed: int = 0, stop=None,
                 slices: tuple = SLICES):
        self.lay, self.size, self.align, self.height, self.stop = lay, size, align, height, stop
        self.slice_kinds, self.per_round = slices, len(slices)
        self.bases = {h: preorder(lay, size, h) for h in HEURISTICS}
        self.rng = np.random.default_rng(seed)
        self.failed: set = set()
        self.nodes = 0
        self.slices = 0
        self.solution: np.ndarray | None = None

    def _random_preorder(self) -> np.ndarray:
        """One of the heuristics' ranks with a random perturbation."""
        return perturb(self.bases[HEURISTICS[int(self.rng.integers(len(HEURISTICS)))]],
                       self.rng)

    def run(self, limit: int, deadline: float) -> str:
        """One slice of at most ``limit`` nodes: FOUND (plan in ``solution``), EXHAUSTED
        (proven: nothing fits), ABORTED (limit reached) or TIMEOUT (deadline or stop)."""
        if self.stop is not None and self.stop.is_set():
            return TIMEOUT
        rule, heuristic = self.slice_kinds[self.slices % self.per_round]
        pre = self.bases[heuristic] if heuristic else self._random_preorder()
        search = _Search(self.lay, self.size, self.align, pre, self.height, deadline, limit,
                         self.failed, self.stop, rule == "first", heuristic)
        self.slices += 1
        old_depth = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old_depth, 8 * len(self.size) + 1000))  # ~3 frames a level
        try:
            result = search.run()
        finally:
            sys.setrecursionlimit(old_depth)
            self.nodes += search.nodes
        if result == FOUND:
            self.solution = search.solution.copy()
        return result


def slice_limit(k: int, n: int, per_round: int = Restarts.PER_ROUND) -> int:
    """Node limit of slice ``k``: ``2n``, doubling after every round of ``per_round`` slices
    (MiniMalloc's round robin, over more ways to search).

    >>> [slice_limit(k, 10, 4) for k in (0, 3, 4, 8)]
    [20, 20, 40, 80]
    """
    return 2 * max(1, n) << (k // per_round)


def decide(
    lay: Layout, size: np.ndarray, align: np.ndarray, height: int, *, deadline: float,
    stop=None, seed: int = 0, node_budget: int | None = None,
) -> tuple[str, np.ndarray | None]:
    """FOUND with offsets, EXHAUSTED (proven: nothing fits), or TIMEOUT with None.

    Restarts (``Restarts``) under node limits that double every round; ``stop`` (a
    ``threading.Event``) ends the search early, reported as TIMEOUT, and so does a spent
    ``node_budget`` (a machine-independent limit).
    """
    search = Restarts(lay, size, align, height, seed=seed, stop=stop)
    while True:
        limit = slice_limit(search.slices, len(size))
        if node_budget is not None:
            limit = min(limit, node_budget - search.nodes)
            if limit <= 0:
                return TIMEOUT, None
        result = search.run(limit, deadline)
        if result == FOUND:
            return FOUND, search.solution
        if result in (EXHAUSTED, TIMEOUT):
            return result, None
