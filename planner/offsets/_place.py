"""Best-fit placement, the step shared by greedy_size, greedy_breadth and best_fit.

Given an order, each buffer in turn looks only at the already-placed buffers whose lifetimes
overlap its own, sorted by offset. The gaps between them (from offset 0 up) are candidate
holes; the buffer takes the smallest hole it fits in (aligned), the lowest such on a tie, and
otherwise goes just above the highest of them. This is TFLite's rule
(``SimpleMemoryArena::Allocate``, GPU ``GreedyBySizeAssignment``): a hole's size is measured
from the end of the bytes below it, before alignment.

MiniMalloc's options: buffers with a fixed offset are placed first, where they must be, and the
others fit around them; with gaps a placed buffer ``a`` keeps a newcomer ``b`` out of offsets
strictly between ``a - effective_size(b, a)`` and ``a + effective_size(a, b)`` (see
``_conflicts``), and not at all when they are never in use together. ``first_fit=True`` takes
the lowest hole instead of the best one (used to settle other planners' plans around fixed
buffers).

Speed: a hole is a gap in the union of the overlapping buffers' byte ranges (the first of the
smallest gaps is the lowest one), so without gaps the placement keeps that union per time
window in ``_occupancy.Occupancy`` and each buffer reads a few merged segments, O(log n) list
operations, instead of every overlapping buffer. With gaps a buffer's forbidden offsets depend
on the pair, so placed buffers live in numpy arrays: one vectorised mask finds the overlapping
ones (O(n) in C per buffer) and the hole search is vectorised over them.

>>> from trainplan.planner.allocation import Buffer
>>> bufs = [Buffer("a", 0, 4, 4), Buffer("b", 0, 4, 4), Buffer("c", 0, 4, 8), Buffer("d", 1, 2, 4)]
>>> place_best_fit(bufs, [2, 0, 1, 3])  # c at 0, a on top (8), b on top (12), d on top (16)
[8, 12, 0, 16]
>>> place_best_fit(bufs[:2] + [Buffer("c", 0, 4, 8, offset=4)], [0, 1])  # c fixed at 4
[0, 12, 4]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from trainplan.planner.allocation import Buffer
from trainplan.planner.offsets._common import align_up
from trainplan.planner.offsets._conflicts import effective_size
from trainplan.planner.offsets._occupancy import Occupancy

_NO_FIT = np.iinfo(np.int64).max


def place_best_fit(
    buffers: Sequence[Buffer], order: Iterable[int], *, first_fit: bool = False
) -> list[int]:
    """Offsets (indexed like ``buffers``) after placing fixed buffers, then the others
    best-fit (or first-fit) in ``order``."""
    if any(b.gaps for b in buffers):
        return _place_with_gaps(buffers, order, first_fit)
    fixed = [i for i, b in enumerate(buffers) if b.offset is not None]
    times = sorted({b.start for b in buffers} | {b.end for b in buffers})
    slot = {t: i for i, t in enumerate(times)}
    occupancy = Occupancy(len(times) - 1)
    offsets = [0] * len(buffers)
    for i in fixed + [i for i in order if buffers[i].offset is None]:
        b = buffers[i]
        first, last = slot[b.start], slot[b.end]
        if b.offset is not None:
            off = b.offset
        else:
            off = _hole_in_union(occupancy.taken(first, last), b.size, b.alignment, first_fit)
        offsets[i] = off
        occupancy.add(first, last, off, off + b.size)
    return offsets


def _hole_in_union(taken: list[tuple[int, int]], size: int, alignment: int,
                   first_fit: bool) -> int:
    """The smallest (or lowest) aligned gap of at least ``size`` between the byte ranges
    ``taken`` (sorted by start, possibly overlapping), the lowest on a tie; else the aligned
    top of them."""
    best, best_room, bottom = None, 0, 0
    for lo, hi in taken:
        room = lo - bottom  # a hole only when positive; it must hold size before alignment
        if room >= size and (best is None or room < best_room):
            start = -(-bottom // alignment) * alignment
            if start + size <= lo:
                best, best_room = start, room
                if first_fit:
                    return best
        if hi > bottom:
            bottom = hi
    return best if best is not None else align_up(bottom, alignment)


def _place_with_gaps(buffers: Sequence[Buffer], order: Iterable[int], first_fit: bool
                     ) -> list[int]:
    """``place_best_fit`` when some buffer has gaps: pairwise forbidden offsets, vectorised."""
    n = len(buffers)
    placed_start = np.empty(n, dtype=np.int64)
    placed_end = np.empty(n, dtype=np.int64)
    placed_off = np.empty(n, dtype=np.int64)
    placed_top = np.empty(n, dtype=np.int64)
    placed_index = np.empty(n, dtype=np.int64)
    gapped = np.array([bool(b.gaps) for b in buffers], dtype=bool)
    offsets = [0] * n
    fixed = [i for i, b in enumerate(buffers) if b.offset is not None]
    k = 0
    for i in fixed + [i for i in order if buffers[i].offset is None]:
        b = buffers[i]
        live = np.flatnonzero((placed_start[:k] < b.end) & (placed_end[:k] > b.start))
        if b.offset is not None:
            off = b.offset
        elif not live.size:
            off = 0
        elif gapped[i] or gapped[placed_index[live]].any():
            off = _hole_with_gaps(buffers, b, placed_index[live], placed_off[live], first_fit)
        else:
            off = _hole(placed_off[live], placed_top[live], b.size, b.alignment, first_fit)
        offsets[i] = off
        placed_start[k], placed_end[k], placed_index[k] = b.start, b.end, i
        placed_off[k], placed_top[k] = off, off + b.size
        k += 1
    return offsets


def _hole_with_gaps(buffers, b: Buffer, others: np.ndarray, offs: np.ndarray,
                    first_fit: bool) -> int:
    """``_hole`` over the offsets each placed buffer forbids ``b`` (see module doc): ``b`` may
    start at or below ``off - e(b, a)``, i.e. end (``+ size``) at or below ``lows``, or at or
    above ``off + e(a, b)``."""
    lows, tops = [], []
    for j, off in zip(others.tolist(), offs.tolist()):
        below, above = effective_size(b, buffers[j]), effective_size(buffers[j], b)
        if below is None:
            continue
        lows.append(off - below + b.size)
        tops.append(off + above)
    if not lows:
        return 0
    return _hole(np.array(lows, dtype=np.int64), np.array(tops, dtype=np.int64), b.size,
                 b.alignment, first_fit)


def _hole(offs: np.ndarray, tops: np.ndarray, size: int, alignment: int, first_fit: bool) -> int:
    """Smallest (or lowest) aligned hole of at least ``size`` among byte ranges [offs, tops),
    else on top. Every candidate lies above the ranges sorted before it and ends below the
    ones after it, so the ranges may even be empty or inverted (gap windows)."""
    order = np.argsort(offs, kind="stable")
    offs, covered = offs[order], np.maximum.accumulate(tops[order])
    below = np.empty_like(offs)  # where the hole under each range starts
    below[0] = 0
    below[1:] = np.maximum(covered[:-1], 0)
    aligned = -(-below // alignment) * alignment
    fits = aligned + size <= offs
    if first_fit:
        hole = np.where(fits, aligned, _NO_FIT)
    else:
        hole = np.where(fits, offs - below, _NO_FIT)
    best = int(np.argmin(hole))  # first (lowest) of the smallest holes
    if hole[best] != _NO_FIT:
        return int(aligned[best])
    return int(-(-max(int(covered[-1]), 0) // alignment) * alignment)


def settle_around_fixed(buffers: Sequence[Buffer], offsets: dict[str, int]) -> dict[str, int]:
    """A plan that ignored fixed offsets, made to keep them: fixed buffers go where they must,
    the others drop, in the order of their planned offsets, into the lowest hole left."""
    free = [i for i, b in enumerate(buffers) if b.offset is None]
    free.sort(key=lambda i: (offsets[buffers[i].id], i))
    placed = place_best_fit(buffers, free, first_fit=True)
    return {b.id: o for b, o in zip(buffers, placed, strict=True)}
