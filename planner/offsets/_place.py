"""Best-fit placement, the step shared by greedy_size, greedy_breadth and best_fit.

Given an order, each buffer in turn looks only at the already-placed buffers whose lifetimes
overlap its own, sorted by offset. The gaps between them (from offset 0 up) are candidate
holes; the buffer takes the smallest hole it fits in (aligned), the lowest such on a tie, and
otherwise goes just above the highest of them. This is TFLite's rule
(``SimpleMemoryArena::Allocate``, GPU ``GreedyBySizeAssignment``): a hole's size is measured
from the end of the bytes below it, before alignment.

Speed: placed buffers live in numpy arrays, so finding the overlapping ones is one vectorised
mask over what is placed (O(n) in C per buffer) and the hole search is vectorised over them.

>>> from trainplan.planner.allocation import Buffer
>>> bufs = [Buffer("a", 0, 4, 4), Buffer("b", 0, 4, 4), Buffer("c", 0, 4, 8), Buffer("d", 1, 2, 4)]
>>> place_best_fit(bufs, [2, 0, 1, 3])  # c at 0, a on top (8), b on top (12), d on top (16)
[8, 12, 0, 16]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from trainplan.planner.allocation import Buffer

_NO_FIT = np.iinfo(np.int64).max


def place_best_fit(buffers: Sequence[Buffer], order: Iterable[int]) -> list[int]:
    """Offsets (indexed like ``buffers``) after placing buffers best-fit in ``order``."""
    n = len(buffers)
    placed_start = np.empty(n, dtype=np.int64)
    placed_end = np.empty(n, dtype=np.int64)
    placed_off = np.empty(n, dtype=np.int64)
    placed_top = np.empty(n, dtype=np.int64)
    offsets = [0] * n
    k = 0
    for i in order:
        b = buffers[i]
        live = np.flatnonzero((placed_start[:k] < b.end) & (placed_end[:k] > b.start))
        off = 0
        if live.size:
            off = _best_hole(placed_off[live], placed_top[live], b.size, b.alignment)
        offsets[i] = off
        placed_start[k], placed_end[k] = b.start, b.end
        placed_off[k], placed_top[k] = off, off + b.size
        k += 1
    return offsets


def _best_hole(offs: np.ndarray, tops: np.ndarray, size: int, alignment: int) -> int:
    """Smallest aligned hole of at least ``size`` among byte ranges [offs, tops), else on top."""
    order = np.argsort(offs, kind="stable")
    offs, covered = offs[order], np.maximum.accumulate(tops[order])
    below = np.empty_like(offs)  # where the hole under each range starts
    below[0] = 0
    below[1:] = covered[:-1]
    aligned = -(-below // alignment) * alignment
    hole = np.where(aligned + size <= offs, offs - below, _NO_FIT)
    best = int(np.argmin(hole))  # first (lowest) of the smallest holes
    if hole[best] != _NO_FIT:
        return int(aligned[best])
    return int(-(-int(covered[-1]) // alignment) * alignment)
