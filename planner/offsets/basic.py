"""NNTrainer's BasicPlanner: no reuse at all, each request stacked on the previous one.

NNTrainer (``nntrainer/tensor/basic_planner.cpp``) uses it when the model property
``memory_optimization`` is false. It walks the requests in the order they were made (token
order) and gives each the running sum of the sizes before it, ignoring lifetimes; the pool is
the sum of all sizes. It is the "no sharing" baseline every other planner is measured against.

Our additions, which NNTrainer does not have: an offset is rounded up to the buffer's alignment
(the skipped bytes are padding), and buffers with a fixed offset stay there while the others
stack past their bytes (at any time: nothing is shared). Gaps are ignored, which is always
valid. With alignment 1 and nothing fixed the offsets are NNTrainer's.

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("a", 0, 2, 5), Buffer("b", 1, 3, 4, alignment=4),
...                        Buffer("c", 2, 4, 3)))
>>> plan = plan_basic(p)
>>> plan.offsets, plan.arena_bytes
({'a': 0, 'b': 8, 'c': 12}, 15)
>>> plan_basic(AllocationProblem(p.buffers[:2] + (Buffer("c", 2, 4, 3, offset=2),))).offsets
{'a': 5, 'b': 12, 'c': 2}
"""

from __future__ import annotations

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.offsets._common import align_up, greedy_plan
from trainplan.planner.plan import Plan


def plan_basic(problem: AllocationProblem) -> Plan:
    """Cumulative offsets in problem order: the arena when nothing shares bytes."""
    fixed = sorted((b.offset, b.offset + b.size) for b in problem.buffers if b.offset is not None)
    offsets, top = {}, 0
    for b in problem.buffers:
        if b.offset is not None:
            offsets[b.id] = b.offset
            continue
        off = align_up(top, b.alignment)
        for lo, hi in fixed:  # step past every fixed block the buffer would touch
            if lo < off + b.size and off < hi:
                off = align_up(hi, b.alignment)
        offsets[b.id] = off
        top = off + b.size
    return greedy_plan("basic", problem, offsets)
