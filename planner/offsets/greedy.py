"""TFLite's two greedy offset planners: greedy by size and greedy by breadth.

Both come from Pisarchyk & Lee, "Efficient Memory Management for Deep Neural Net Inference"
(arXiv 2001.03288), implemented in TensorFlow Lite (``lite/delegates/gpu/common/
memory_management/greedy_by_size_assignment.cc``, ``greedy_by_breadth_assignment.cc``; the CPU
``ArenaPlanner`` + ``SimpleMemoryArena::Allocate`` use the greedy-by-size rule). They differ
only in the order in which buffers are placed; the placement is the same best fit
(``_place.place_best_fit``): among the already-placed buffers whose lifetimes overlap, take
the smallest gap that holds the buffer, else go above all of them.

- **greedy_size**: largest buffer first. TFLite compares sizes only (``CompareBySize``); its
  CPU arena breaks ties by earlier first use, and so do we (then problem order).
- **greedy_breadth**: a time step's *breadth* is the total size of the buffers live during it.
  Steps are visited widest first (ties: earlier step); at each step its still-unplaced buffers
  are placed largest first (ties: earlier start, then problem order). TFLite's code uses this
  order for its *shared objects* variant; the paper applies the same order to offset
  calculation, which is what we do. A buffer is placed at the widest step it is live in, so
  we compute that step for every buffer with a range-minimum query instead of walking steps.

Our time steps are the intervals between consecutive start/end times (the live set is constant
on each), TFLite's are operator indices; with integer times the visiting order is the same.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 8), Buffer("c", 2, 4, 4),
...                        Buffer("d", 3, 5, 8)))
>>> plan_greedy_size(p).offsets, plan_greedy_size(p).arena_bytes
({'a': 8, 'b': 0, 'c': 8, 'd': 0}, 12)
>>> plan_greedy_breadth(p).arena_bytes
12
"""

from __future__ import annotations

import numpy as np

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets._common import greedy_plan
from trainplan.planner.offsets._place import place_best_fit
from trainplan.planner.plan import Plan


def plan_greedy_size(problem: AllocationProblem) -> Plan:
    """Largest buffer first (ties: earlier start), each into the best-fitting gap."""
    bufs = problem.buffers
    size = np.array([b.size for b in bufs], dtype=np.int64)
    start = np.array([b.start for b in bufs], dtype=np.int64)
    order = np.lexsort((np.arange(len(bufs)), start, -size)) if bufs else []
    return greedy_plan("greedy_size", problem, _by_id(bufs, place_best_fit(bufs, order)))


def plan_greedy_breadth(problem: AllocationProblem) -> Plan:
    """Widest time step first; its unplaced buffers largest first, into the best-fitting gap."""
    bufs = problem.buffers
    if not bufs:
        return greedy_plan("greedy_breadth", problem, {})
    times, live = problem.live_curve()
    steps = len(times) - 1  # step j is [times[j], times[j+1]), carrying live[j] bytes
    rank = np.empty(steps, dtype=np.int64)  # visiting position of each step
    rank[np.lexsort((np.arange(steps), -live[:steps]))] = np.arange(steps)
    first = np.searchsorted(times, [b.start for b in bufs])
    last = np.searchsorted(times, [b.end for b in bufs])  # exclusive step index
    visit = _range_min(rank, first, last)
    size = np.array([b.size for b in bufs], dtype=np.int64)
    start = np.array([b.start for b in bufs], dtype=np.int64)
    order = np.lexsort((np.arange(len(bufs)), start, -size, visit))
    return greedy_plan("greedy_breadth", problem, _by_id(bufs, place_best_fit(bufs, order)))


def _by_id(bufs, offsets: list[int]) -> dict[str, int]:
    return {b.id: o for b, o in zip(bufs, offsets, strict=True)}


def _range_min(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min(values[lo[i]:hi[i]]) for every i (all ranges non-empty), by a sparse table."""
    table = [values]
    while 2 ** len(table) <= len(values):
        prev, half = table[-1], 2 ** (len(table) - 1)
        table.append(np.minimum(prev[:-half], prev[half:]))
    level = np.floor(np.log2(hi - lo)).astype(np.int64)
    out = np.empty(len(lo), dtype=values.dtype)
    for k in np.unique(level):
        sel = level == k
        width = 2 ** int(k)
        out[sel] = np.minimum(table[k][lo[sel]], table[k][hi[sel] - width])
    return out
