"""The sweep behind the exact search: sections, who covers them, conflicts, cut counts.

Times are swept once: the distinct start/end times cut time into elementary intervals; the
*sections* are those that open with a start and close with an end, i.e. the maximal sets of
buffers live together (the maximal cliques of the interval graph; MiniMalloc keeps the sets
before each end, a few more). Every other interval holds a subset of a neighbour's buffers,
so it adds no constraint, and two buffers overlap in time exactly when they share a section.
Buffer ``b`` covers sections ``[s0[b], s1[b])``; ``members[ptr[k]:ptr[k+1]]`` lists the
buffers of section ``k``; ``cuts[k]`` counts buffers that cover both section ``k`` and
``k + 1`` (a zero is a cut point where the problem splits in two). ``section_bound``
sharpens the max-live bound with alignment padding; ``preorder`` ranks buffers by
MiniMalloc's static heuristics.

>>> import numpy as np
>>> lay = build_layout(np.array([0, 1, 5]), np.array([2, 3, 6]))
>>> lay.n_sections, lay.s0.tolist(), lay.s1.tolist(), lay.cuts.tolist()  # [1,2) and [5,6)
(2, [0, 0, 1], [1, 1, 2], [0])
>>> [nb.tolist() for nb in lay.nbrs]
[[1], [0], []]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEURISTICS = ("WAT", "TAW", "TWA")  # MiniMalloc's preorders: Width, Area, Total (descending)


@dataclass(frozen=True)
class Layout:
    """Static section data of a problem (see module doc)."""

    n_sections: int
    s0: np.ndarray
    s1: np.ndarray
    members: np.ndarray
    ptr: np.ndarray
    nbrs: list[np.ndarray]
    cuts: np.ndarray
    width: np.ndarray
    member_section: np.ndarray


def build_layout(start: np.ndarray, end: np.ndarray) -> Layout:
    """Sweep the lifetimes ``[start, end)`` into sections, members, conflicts and cut counts."""
    start, end = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    times = np.unique(np.concatenate([start, end]))
    first, last = np.searchsorted(times, start), np.searchsorted(times, end)
    delta = np.zeros(len(times) + 1, dtype=np.int64)
    np.add.at(delta, first, 1)
    np.add.at(delta, last, -1)
    busy = np.cumsum(delta)[: max(len(times) - 1, 0)] > 0
    # keep the maximal ones: opened by a start, closed by an end
    opens = np.zeros(len(times), dtype=bool)
    opens[first] = True
    closes = np.zeros(len(times), dtype=bool)
    closes[last] = True
    busy &= opens[:-1] & closes[1:]
    before = np.r_[0, np.cumsum(busy)]  # sections before each elementary interval
    s0, s1 = before[first], before[last]
    n_sections = int(busy.sum())
    members, ptr = _members(s0, s1, n_sections)
    member_section = np.repeat(np.arange(n_sections), np.diff(ptr))
    return Layout(n_sections, s0, s1, members, ptr, _conflicts(s0, s1), _cuts(s0, s1, n_sections),
                  end - start, member_section)


def _members(s0: np.ndarray, s1: np.ndarray, n_sections: int) -> tuple[np.ndarray, np.ndarray]:
    """Buffers of every section in one flat array (CSR): section k is ``ptr[k]:ptr[k+1]``."""
    counts = s1 - s0
    owner = np.repeat(np.arange(len(s0)), counts)
    section = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    section = section + np.repeat(s0, counts)
    order = np.argsort(section, kind="stable")
    ptr = np.searchsorted(section[order], np.arange(n_sections + 1))
    return owner[order], ptr


def _conflicts(s0: np.ndarray, s1: np.ndarray) -> list[np.ndarray]:
    """For each buffer, the buffers whose section runs intersect its own."""
    order = np.argsort(s0, kind="stable")
    sorted_s0 = s0[order]
    out = []
    for b in range(len(s0)):
        cand = order[: np.searchsorted(sorted_s0, s1[b])]  # those starting before b ends
        hit = cand[(s1[cand] > s0[b]) & (cand != b)]
        out.append(np.sort(hit))
    return out


def _cuts(s0: np.ndarray, s1: np.ndarray, n_sections: int) -> np.ndarray:
    """``cuts[k]``: buffers covering both section ``k`` and ``k + 1``."""
    delta = np.zeros(n_sections + 1, dtype=np.int64)
    crossing = s1 - s0 >= 2
    np.add.at(delta, s0[crossing], 1)
    np.add.at(delta, s1[crossing] - 1, -1)
    return np.cumsum(delta)[: max(n_sections - 1, 0)]


def section_grid(lay: Layout, align: np.ndarray) -> np.ndarray:
    """Per section, the gcd of its buffers' alignments: every offset there is a multiple."""
    if not lay.n_sections:
        return np.ones(0, dtype=np.int64)
    return np.gcd.reduceat(align[lay.members], lay.ptr[:-1])


def section_bound(lay: Layout, size: np.ndarray, align: np.ndarray) -> int:
    """Max-live bound sharpened by alignment. In a section, the buffers whose alignment is a
    multiple of ``a`` start on the ``a`` grid and never share an ``a``-block, so all of them
    but the top one take their size rounded up to ``a``; the bound is the largest such stack
    over every section and every alignment ``a`` in it (``a = 1``: the plain max-live).

    >>> import numpy as np
    >>> lay = build_layout(np.array([0, 0, 0]), np.array([1, 1, 1]))
    >>> section_bound(lay, np.array([3, 5, 1]), np.array([4, 4, 1]))  # 3 -> 4, then 5 on top
    9
    >>> section_bound(lay, np.array([1, 1, 1]), np.array([1, 2**20, 2**20]))
    1048577
    """
    if not lay.n_sections:
        return 0
    sizes, aligns = size[lay.members], align[lay.members]
    best = 0
    for a in np.unique(aligns).tolist():
        member = aligns % a == 0
        rounded = np.where(member, -(-sizes // a) * a, 0)
        total = np.add.reduceat(rounded, lay.ptr[:-1])
        pad = np.maximum.reduceat(np.where(member, rounded - sizes, 0), lay.ptr[:-1])
        best = max(best, int((total - pad).max()))
    return max(best, int(np.add.reduceat(sizes, lay.ptr[:-1]).max()))


def preorder(
    lay: Layout, size: np.ndarray, heuristic: str, *, load: np.ndarray | None = None,
    subset: np.ndarray | None = None,
) -> np.ndarray:
    """Rank of every buffer in a static preorder such as ``"WAT"`` (keys descending, then id).

    ``load`` (per section) replaces the sections' total sizes behind ``T``; with ``subset``
    only those buffers are ranked (0, 1, ... in the returned order of ``subset``), as
    MiniMalloc re-ranks the unplaced buffers of each part it splits off.
    """
    n = len(size)
    if not n:
        return np.zeros(0, dtype=np.int64)
    if load is None:
        load = np.add.reduceat(size[lay.members], lay.ptr[:-1])
    total = np.maximum.reduceat(load[_section_index(lay)], _run_starts(lay))
    keys = {"W": lay.width, "A": size * lay.width, "T": total, "Z": size}
    pick = np.arange(n) if subset is None else subset
    columns = [-keys[c][pick] for c in reversed(heuristic)]
    order = np.lexsort([pick] + columns)
    rank = np.empty(len(pick), dtype=np.int64)
    rank[order] = np.arange(len(pick))
    return rank


def perturb(rank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A preorder's ranks shuffled locally: each moves by up to an eighth of the buffers.

    Restarts under such orders explore differently while keeping the heuristic's spirit.
    """
    n = len(rank)
    noisy = rank + rng.integers(0, max(2, n // 8), n) + rng.random(n)
    return np.argsort(np.argsort(noisy))


def _section_index(lay: Layout) -> np.ndarray:
    """Sections covered by each buffer in turn (buffer 0's run, then buffer 1's, ...)."""
    counts = lay.s1 - lay.s0
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - lay.s0, counts)


def _run_starts(lay: Layout) -> np.ndarray:
    """Offsets of each buffer's run in ``_section_index``."""
    counts = lay.s1 - lay.s0
    return np.cumsum(counts) - counts
