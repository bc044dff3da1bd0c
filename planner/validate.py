"""The one independent oracle for plans: every planner test and every experiment goes through it.

``validate_plan`` lists every broken rule (an empty list means the plan is valid); ``check_plan``
raises ``PlanError`` carrying that list. It shares no code with any planner, so a planner bug
cannot hide behind the same bug in its checker.

Rules: every buffer has an integer offset, ``offset >= 0`` and a multiple of the buffer's
alignment, equal to its fixed offset when it has one, ``offset + size <= plan.arena_bytes``,
``arena_bytes`` is exactly the highest byte reserved (0 for an empty problem), at most the
capacity when there is one and at least the lower bound, and no two buffers share a byte while
both are in use: a gap frees a buffer's bytes (all of them, or all but its window) for its
duration. That is the physical rule; MiniMalloc's own validator is stricter with gap windows
(it wants one buffer wholly above the other wherever they meet).

>>> from trainplan.planner.allocation import AllocationProblem, Buffer
>>> from trainplan.planner.plan import Plan
>>> p = AllocationProblem((Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4), Buffer("c", 2, 4, 4)))
>>> validate_plan(p, Plan("hand", {"a": 0, "b": 4, "c": 0}, 8, p.lower_bound()))
[]
>>> for line in validate_plan(p, Plan("hand", {"a": 0, "b": 2, "c": 0}, 6, 8)):
...     print(line)
arena 6 is below the lower bound 8 (max bytes live at once)
buffer 'a' (time [0,2), bytes [0,4)) overlaps buffer 'b' (time [1,3), bytes [2,6))
buffer 'b' (time [1,3), bytes [2,6)) overlaps buffer 'c' (time [2,4), bytes [0,4))
"""

from __future__ import annotations

import bisect
import numbers
from typing import NamedTuple

from trainplan.planner.allocation import AllocationProblem
from trainplan.planner.errors import PlanError
from trainplan.planner.plan import Plan

MAX_OVERLAPS = 100  # overlapping pairs listed before the list is cut short


class _Piece(NamedTuple):
    """Bytes ``[lo, hi)`` of buffer ``id`` in use over ``[start, end)``."""

    start: int
    end: int
    lo: int
    hi: int
    id: str


def validate_plan(
    problem: AllocationProblem, plan: Plan, *, max_overlaps: int = MAX_OVERLAPS
) -> list[str]:
    """Every rule the plan breaks, one sentence each naming the buffer(s); [] when valid."""
    errors = _offset_errors(problem, plan)
    errors += _arena_errors(problem, plan)
    placed = [
        _Piece(t0, t1, plan.offsets[b.id] + lo, plan.offsets[b.id] + hi, b.id)
        for b in problem.buffers if _is_offset(plan.offsets.get(b.id))
        for t0, t1, lo, hi in b.pieces()
    ]
    errors += _overlap_errors(placed, max_overlaps)
    return errors


def check_plan(problem: AllocationProblem, plan: Plan) -> None:
    """Raise ``PlanError`` listing every violation when the plan is not valid for the problem."""
    errors = validate_plan(problem, plan)
    if errors:
        shown = "\n  ".join(errors)
        raise PlanError(
            f"plan from {plan.planner!r} breaks {len(errors)} rule(s):\n  {shown}", errors
        )


def _is_offset(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _offset_errors(problem: AllocationProblem, plan: Plan) -> list[str]:
    """Per-buffer rules: present, integral, non-negative, aligned, inside the arena."""
    errors = []
    known = {b.id for b in problem.buffers}
    for name in plan.offsets:
        if name not in known:
            errors.append(f"offset given for {name!r}, which is not a buffer of the problem")
    for b in problem.buffers:
        off = plan.offsets.get(b.id)
        if off is None:
            errors.append(f"buffer {b.id!r} has no offset")
        elif not _is_offset(off):
            errors.append(f"buffer {b.id!r}: offset {off!r} is not an integer")
        elif off < 0:
            errors.append(f"buffer {b.id!r}: offset {off} is negative")
        else:
            if b.offset is not None and off != b.offset:
                errors.append(f"buffer {b.id!r}: offset {off} differs from its fixed offset "
                              f"{b.offset}")
            if off % b.alignment:
                errors.append(
                    f"buffer {b.id!r}: offset {off} is not a multiple of its alignment "
                    f"{b.alignment}"
                )
            if off + b.size > plan.arena_bytes:
                errors.append(
                    f"buffer {b.id!r}: bytes [{off},{off + b.size}) end past the arena "
                    f"({plan.arena_bytes} bytes)"
                )
    return errors


def _arena_errors(problem: AllocationProblem, plan: Plan) -> list[str]:
    """Whole-plan rules: arena is the true peak, fits the capacity, respects the bound."""
    errors = []
    tops = [
        plan.offsets[b.id] + b.size
        for b in problem.buffers
        if _is_offset(plan.offsets.get(b.id)) and plan.offsets[b.id] >= 0
    ]
    peak = max(tops, default=0)
    if len(tops) == len(problem.buffers) and plan.arena_bytes != peak:
        errors.append(f"arena_bytes is {plan.arena_bytes} but the highest byte in use is {peak}")
    if problem.capacity is not None and plan.arena_bytes > problem.capacity:
        errors.append(f"arena {plan.arena_bytes} exceeds the capacity {problem.capacity}")
    bound = problem.lower_bound()
    if plan.arena_bytes < bound:
        errors.append(
            f"arena {plan.arena_bytes} is below the lower bound {bound} (max bytes live at once)"
        )
    if plan.lower_bound_bytes != bound:
        errors.append(
            f"plan.lower_bound_bytes is {plan.lower_bound_bytes} but the problem's lower bound "
            f"is {bound}"
        )
    return errors


def _overlap_errors(placed: list[_Piece], limit: int) -> list[str]:
    """Pairs in use at the same time that share bytes, found by a sweep over time.

    The fast path keeps the pieces in use sorted by their low byte and checks each newcomer
    against its two neighbours: while no pair has overlapped, byte ranges in use are disjoint,
    so neighbours are the only candidates. On the first hit, ``_all_overlaps`` lists every pair.
    """
    events = sorted(
        [(p.end, 0, i) for i, p in enumerate(placed)]
        + [(p.start, 1, i) for i, p in enumerate(placed)]
    )  # at equal times ends (0) come before starts (1): [s, e) intervals touching is fine
    live: list[tuple[int, int]] = []  # (low byte, index), sorted
    for _, is_start, i in events:
        key = (placed[i].lo, i)
        if not is_start:
            del live[bisect.bisect_left(live, key)]
            continue
        pos = bisect.bisect_left(live, key)
        below = pos > 0 and placed[live[pos - 1][1]].hi > key[0]
        above = pos < len(live) and live[pos][0] < placed[i].hi
        if below or above:
            return _all_overlaps(placed, events, limit)
        live.insert(pos, key)
    return []


def _all_overlaps(placed: list[_Piece], events: list, limit: int) -> list[str]:
    """Every overlapping pair (up to ``limit``) in O((n + k) log n) with a max-segment tree.

    Leaves are the pieces ranked by low byte and hold a live piece's high byte (or -1). When a
    piece starts, the live pieces sharing its bytes are exactly the leaves ranked below its
    high byte whose high byte is above its low byte; the tree prunes every subtree without one.
    """
    order = sorted(range(len(placed)), key=lambda i: (placed[i].lo, i))
    rank = {i: r for r, i in enumerate(order)}
    sorted_lows = [placed[i].lo for i in order]
    size = 1
    while size < max(1, len(order)):
        size *= 2
    tree = [-1] * (2 * size)
    found: list[str] = []
    for _, is_start, i in events:
        if is_start:
            hi = bisect.bisect_left(sorted_lows, placed[i].hi)
            for leaf in _leaves_above(tree, size, hi, placed[i].lo):
                found.append(_describe(placed[order[leaf]], placed[i]))
                if len(found) >= limit:
                    found.append(f"... stopped after {limit} overlapping pairs; there are more")
                    return found
        _set_leaf(tree, size, rank[i], placed[i].hi if is_start else -1)
    return found


def _set_leaf(tree: list[int], size: int, leaf: int, value: int) -> None:
    node = leaf + size
    tree[node] = value
    node //= 2
    while node:
        tree[node] = max(tree[2 * node], tree[2 * node + 1])
        node //= 2


def _leaves_above(tree: list[int], size: int, hi: int, threshold: int) -> list[int]:
    """Leaves in ``[0, hi)`` whose value exceeds ``threshold``."""
    out, stack = [], [(1, 0, size)]
    while stack:
        node, lo, width_hi = stack.pop()
        if lo >= hi or tree[node] <= threshold:
            continue
        if node >= size:
            out.append(node - size)
            continue
        mid = (lo + width_hi) // 2
        stack.append((2 * node + 1, mid, width_hi))
        stack.append((2 * node, lo, mid))
    return out


def _describe(a: _Piece, b: _Piece) -> str:
    return (
        f"buffer {a.id!r} (time [{a.start},{a.end}), bytes [{a.lo},{a.hi})) overlaps "
        f"buffer {b.id!r} (time [{b.start},{b.end}), bytes [{b.lo},{b.hi}))"
    )
