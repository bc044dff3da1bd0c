"""NNTrainer's BasicPlanner: no reuse at all, each request stacked on the previous one.

NNTrainer (``nntrainer/tensor/basic_planner.cpp``) uses it when the model property
``memory_optimization`` is false. It walks the requests in the order they were made (token
order) and gives each the running sum of the sizes before it, ignoring lifetimes; the pool is
the sum of all sizes. It is the "no sharing" baseline every other planner is measured against.

Our only addition is alignment, which NNTrainer does not have: an offset is rounded up to the
buffer's alignment (the skipped bytes are padding). With alignment 1 the offsets are NNTrainer's.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("a", 0, 2, 5), Buffer("b", 1, 3, 4, alignment=4),
...                        Buffer("c", 2, 4, 3)))
>>> plan = plan_basic(p)
>>> plan.offsets, plan.arena_bytes
({'a': 0, 'b': 8, 'c': 12}, 15)
"""

from __future__ import annotations

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets._common import align_up, greedy_plan
from trainplan.planner.plan import Plan


def plan_basic(problem: AllocationProblem) -> Plan:
    """Cumulative offsets in problem order: the arena when nothing shares bytes."""
    offsets, top = {}, 0
    for b in problem.buffers:
        offsets[b.id] = align_up(top, b.alignment)
        top = offsets[b.id] + b.size
    return greedy_plan("basic", problem, offsets)
