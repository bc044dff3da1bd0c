"""Best fit in time order: what an online allocator that never moves a buffer would do.

Buffers are taken by start time (ties: larger first, then problem order), i.e. in the order a
running program would ask for them. Each goes into the smallest hole that holds it among the
already-placed buffers still alive at its start (lowest offset on a tie), else on top of them
(``_place.place_best_fit``). Unlike TFLite's greedy planners it cannot look ahead at large
buffers that start later, so it shows what planning ahead (greedy_size, exact) buys over a
good run-time allocator; unlike NNTrainer's V3 it picks the best hole, not the first.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("h1", 0, 2, 8), Buffer("k1", 0, 6, 2), Buffer("h2", 1, 2, 4),
...                        Buffer("k2", 1, 6, 2), Buffer("x", 2, 6, 4)))
>>> plan_best_fit(p).offsets  # at time 2, x takes the 4-byte hole at 10, not the 8 at 0
{'h1': 0, 'k1': 8, 'h2': 10, 'k2': 14, 'x': 10}
"""

from __future__ import annotations

import numpy as np

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets._common import greedy_plan
from trainplan.planner.offsets._place import place_best_fit
from trainplan.planner.plan import Plan


def plan_best_fit(problem: AllocationProblem) -> Plan:
    """Buffers by start time (larger first on ties), each into the best-fitting hole."""
    bufs = problem.buffers
    size = np.array([b.size for b in bufs], dtype=np.int64)
    start = np.array([b.start for b in bufs], dtype=np.int64)
    order = np.lexsort((np.arange(len(bufs)), -size, start)) if bufs else []
    offsets = place_best_fit(bufs, order)
    return greedy_plan("best_fit", problem, {b.id: o for b, o in zip(bufs, offsets, strict=True)})
