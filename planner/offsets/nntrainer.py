"""NNTrainer's optimized memory planners V1, V2 and V3, reproduced decision for decision.

NNTrainer's ``MemoryPool`` records requests in the order layers ask for them (token order) and
hands the planner parallel lists of sizes and ``[start, end)`` validity intervals plus a flag
per request telling whether it is a weight gradient (``is_wgrad``). We read the planners'
sources (``nntrainer/tensor/optimized_v{1,2,3}_planner.cpp``); our Buffers keep problem order,
so with buffers in token order every order-dependent decision below is NNTrainer's.

All three first sort the requests by (start, end) ascending with ``std::sort``, which is not
stable; ``_stdsort`` replays GNU libstdc++'s introsort so that equal keys land where they land in
NNTrainer (this decides, e.g., whether a layer's bias or weight gradient is placed first).

- **V1** (``OptimizedV1Planner``, NNTrainer's default) keeps a stack of placed requests whose
  offsets grow upward. Before each request it pops expired entries (end <= request start) from
  the top of the stack only, so an expired entry under a live one stays in place. It then
  scans the stack from the top down for an expired entry of exactly the same size and takes
  over its offset and its stack slot. Otherwise it goes on top: offset = top entry's offset +
  size. The pool is the highest byte ever pushed.
- **V2** (``OptimizedV2Planner``) runs V1 on all requests that are not weight gradients. The
  weight gradients are then sorted largest first (``std::sort`` again) and packed above V1's
  peak into *slots*: a gradient joins the first slot at least as large whose recorded
  intervals do not clash with its own, else opens a new slot on top of the last one.
- **V3** (``OptimizedV3Planner``) drops every expired request (not only the stack top), sorts
  the live ones by offset, lists the gaps between them from offset 0 upward and takes the first
  gap that is large enough (first fit, any size), else the top of the highest live request.

Differences, all of which vanish for NNTrainer's own inputs:

- Alignment (NNTrainer has none). An offset is rounded up to the buffer's alignment, and an
  offset is only reused when it is a multiple of it. With alignment 1 nothing changes.
- V2's clash test. NNTrainer tests three cases (interval strictly inside, overlapping the end,
  identical) and misses an interval that starts earlier and overlaps the start, or that shares
  exactly one end point; reusing a slot then makes two live gradients share bytes (NNTrainer's
  pool rejects such a layout with "Planned layout is not feasible"). We test true overlap by
  default. A wrong merge always yields an invalid plan, so whenever NNTrainer's V2 returns a
  valid layout ours returns the same one. ``nntrainer_clash_test=True`` replays NNTrainer's test.
- A buffer is a weight gradient when ``kind`` is ``"gradient"`` or ``"wgrad"``.
- MiniMalloc's options: gaps are ignored (a buffer counts as live over its whole lifetime,
  which is always valid); with fixed offsets the planner runs on the other buffers and its plan
  is then settled around the fixed ones (``_place.settle_around_fixed``: in the order of its
  offsets, each buffer drops into the lowest hole).

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> p = AllocationProblem((Buffer("x", 0, 2, 8), Buffer("y", 1, 4, 4), Buffer("z", 2, 5, 6)))
>>> plan_nntrainer_v1(p).offsets  # x expired under live y: not popped, and z is not x's size
{'x': 0, 'y': 8, 'z': 12}
>>> plan_nntrainer_v3(p).offsets  # V3 drops x anyway and first-fits z into the hole below y
{'x': 0, 'y': 8, 'z': 0}
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.offsets._common import align_up, greedy_plan
from trainplan.planner.offsets._free_gaps import FreeGaps
from trainplan.planner.offsets._min_tree import MinTree
from trainplan.planner.offsets._place import settle_around_fixed
from trainplan.planner.offsets._stdsort import std_sort_order
from trainplan.planner.plan import Plan

WGRAD_KINDS = frozenset({"gradient", "wgrad"})


def plan_nntrainer_v1(problem: AllocationProblem) -> Plan:
    """NNTrainer's default planner: a stack, top-only popping, exact-size reuse."""
    offsets = _v1_offsets(_free(problem))
    return greedy_plan("nntrainer_v1", problem, _settled(problem, offsets))


def plan_nntrainer_v2(problem: AllocationProblem, *, nntrainer_clash_test: bool = False) -> Plan:
    """V1 for everything but weight gradients, which share size-sorted slots above V1's peak."""
    plain = [b for b in _free(problem) if b.kind not in WGRAD_KINDS]
    wgrads = [b for b in _free(problem) if b.kind in WGRAD_KINDS]
    offsets = _v1_offsets(plain)
    peak = max((offsets[b.id] + b.size for b in plain), default=0)
    offsets.update(_wgrad_slot_offsets(wgrads, peak, nntrainer_clash_test))
    options = {"nntrainer_clash_test": True} if nntrainer_clash_test else {}
    return greedy_plan("nntrainer_v2", problem, _settled(problem, offsets), options)


def plan_nntrainer_v3(problem: AllocationProblem) -> Plan:
    """First fit into the gaps between the requests still live, else on top of them."""
    return greedy_plan("nntrainer_v3", problem, _settled(problem, _v3_offsets(_free(problem))))


def _free(problem: AllocationProblem) -> list[Buffer]:
    """The buffers the replay plans: all but those with a fixed offset."""
    return [b for b in problem.buffers if b.offset is None]


def _settled(problem: AllocationProblem, offsets: dict[str, int]) -> dict[str, int]:
    """The replay's offsets, settled around the fixed buffers when there are any."""
    if not problem.has_fixed:
        return offsets
    return settle_around_fixed(problem.buffers, {**offsets, **{
        b.id: b.offset for b in problem.buffers if b.offset is not None}})


def _by_start_end(reqs: list[Buffer]) -> list[int]:
    """The order ``std::sort`` with NNTrainer's (start, end) comparator gives."""
    return std_sort_order([(b.start, b.end) for b in reqs])


def _v1_offsets(reqs: list[Buffer]) -> dict[str, int]:
    """V1's stack walk. Per size, the stack positions holding that size and a minimum tree of
    their ends find the highest expired entry of the size in O(log n), not by a scan."""
    stack: list[list[int]] = []  # [offset, size, end], offsets increasing bottom to top
    by_size: dict[int, tuple[list[int], MinTree]] = {}  # size -> its positions, their ends
    counts = Counter(b.size for b in reqs)
    offsets: dict[str, int] = {}
    for i in _by_start_end(reqs):
        b = reqs[i]
        # pop expired entries from the top only, as NNTrainer does
        while stack and stack[-1][2] <= b.start:
            positions, ends = by_size[stack.pop()[1]]
            positions.pop()
            ends.set(len(positions), math.inf)
        # reuse the highest expired entry of exactly this size (scan from the top)
        positions, ends = by_size.get(b.size) or by_size.setdefault(
            b.size, ([], MinTree(counts[b.size])))
        found = ends.rightmost_at_most(b.start)
        while found is not None and stack[positions[found]][0] % b.alignment:
            found = ends.rightmost_at_most(b.start, limit=found)
        if found is not None:
            entry = stack[positions[found]]
            entry[2] = b.end  # the request takes over the entry: same offset and size
            ends.set(found, b.end)
            offsets[b.id] = entry[0]
            continue
        off = align_up(stack[-1][0] + stack[-1][1], b.alignment) if stack else 0
        ends.set(len(positions), b.end)
        positions.append(len(stack))
        stack.append([off, b.size, b.end])
        offsets[b.id] = off
    return offsets


def _nntrainer_clash(interval: tuple[int, int], start: int, end: int) -> bool:
    """NNTrainer V2's three-case test of a recorded interval against a new [start, end)."""
    first, second = interval
    inside = first < start and first < end and end < second
    over_end = first < start < second and end > second
    return inside or over_end or (start == first and end == second)


def _wgrad_slot_offsets(
    wgrads: list[Buffer], base: int, nntrainer_clash_test: bool
) -> dict[str, int]:
    """V2's second phase: weight gradients, largest first, into slots stacked from ``base``.

    With the true overlap test a slot's intervals never overlap, so they are kept sorted and a
    clash is one bisection; NNTrainer's own test lets them overlap and is checked one by one.
    """
    slots: list[tuple[int, int, list[int], list[int]]] = []  # (offset, size, starts, ends)
    offsets: dict[str, int] = {}
    for i in std_sort_order([-b.size for b in wgrads]):
        b = wgrads[i]
        # NNTrainer skips the clash test for a smaller slot and merges anyway; requests come
        # largest first, so every slot is at least as large and that branch never runs.
        for off, size, starts, ends in slots:
            if size >= b.size and off % b.alignment == 0 and not (
                _clashes_nntrainer(starts, ends, b.start, b.end) if nntrainer_clash_test
                else _clashes(starts, ends, b.start, b.end)
            ):
                offsets[b.id] = off
                _record(starts, ends, b.start, b.end, nntrainer_clash_test)
                break
        else:
            top = slots[-1][0] + slots[-1][1] if slots else base
            off = align_up(top, b.alignment)
            slots.append((off, b.size, [b.start], [b.end]))
            offsets[b.id] = off
    return offsets


def _clashes(starts: list[int], ends: list[int], start: int, end: int) -> bool:
    """True overlap of ``[start, end)`` with disjoint intervals sorted by start (and end)."""
    i = bisect.bisect_right(ends, start)
    return i < len(starts) and starts[i] < end


def _clashes_nntrainer(starts: list[int], ends: list[int], start: int, end: int) -> bool:
    return any(_nntrainer_clash(iv, start, end) for iv in zip(starts, ends))


def _record(starts: list[int], ends: list[int], start: int, end: int, in_order: bool) -> None:
    """Add an interval to a slot: sorted when the slot's intervals are disjoint, else
    appended (NNTrainer's test only looks at each interval, not at their order)."""
    pos = len(starts) if in_order else bisect.bisect_right(starts, start)
    starts.insert(pos, start)
    ends.insert(pos, end)


def _v3_offsets(reqs: list[Buffer]) -> dict[str, int]:
    """V3's walk: live requests kept sorted by offset, expired ones dropped by a heap of ends,
    the gaps between live requests indexed by ``FreeGaps`` for the first fit."""
    live_offs: list[int] = []  # offsets of live requests, ascending (live bytes are disjoint)
    live_tops: list[int] = []  # offset + size, same order
    ends: list[tuple[int, int]] = []  # heap of (end time, offset)
    gaps = FreeGaps()  # the gaps between consecutive live requests (from 0), non-empty ones
    offsets: dict[str, int] = {}
    for i in _by_start_end(reqs):
        b = reqs[i]
        # drop every expired request, wherever it sits
        while ends and ends[0][0] <= b.start:
            pos = bisect.bisect_left(live_offs, heapq.heappop(ends)[1])
            below = live_tops[pos - 1] if pos else 0
            if live_offs[pos] > below:
                gaps.remove(below, live_offs[pos])
            if pos + 1 < len(live_offs):
                above = live_offs[pos + 1]
                if above > live_tops[pos]:
                    gaps.remove(live_tops[pos], above)
                if above > below:
                    gaps.add(below, above)
            del live_offs[pos], live_tops[pos]
        # first gap from the bottom that holds the request, else the top of the live ones
        off = gaps.first_fit(b.size, b.alignment)
        if off is None:
            off = align_up(live_tops[-1] if live_tops else 0, b.alignment)
        pos = bisect.bisect_left(live_offs, off)
        below = live_tops[pos - 1] if pos else 0
        if pos < len(live_offs):
            above = live_offs[pos]
            if above > below:
                gaps.remove(below, above)
            if above > off + b.size:
                gaps.add(off + b.size, above)
        if off > below:
            gaps.add(below, off)
        live_offs.insert(pos, off)
        live_tops.insert(pos, off + b.size)
        heapq.heappush(ends, (b.end, off))
        offsets[b.id] = off
    return offsets
