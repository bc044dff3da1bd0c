"""The one independent oracle for plans: every planner test and every experiment goes through it.

``validate_plan`` lists every broken rule (an empty list means the plan is valid); ``check_plan``
raises ``PlanError`` carrying that list. It shares no code with any planner, so a planner bug
cannot hide behind the same bug in its checker.

Rules: every buffer has an integer offset, ``offset >= 0`` and a multiple of the buffer's
alignment, ``offset + size <= plan.arena_bytes``, ``arena_bytes`` is exactly the highest byte in
use (0 for an empty problem), at most the capacity when there is one and at least the lower
bound, and no two buffers whose ``[start, end)`` intervals overlap share a byte.

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

from trainplan.planner.allocation import AllocationProblem, Buffer
from trainplan.planner.errors import PlanError
from trainplan.planner.plan import Plan

MAX_OVERLAPS = 100  # overlapping pairs listed before the list is cut short


def validate_plan(
    problem: AllocationProblem, plan: Plan, *, max_overlaps: int = MAX_OVERLAPS
) -> list[str]:
    """Every rule the plan breaks, one sentence each naming the buffer(s); [] when valid."""
    errors = _offset_errors(problem, plan)
    errors += _arena_errors(problem, plan)
    placed = [b for b in problem.buffers if _is_offset(plan.offsets.get(b.id))]
    errors += _overlap_errors(placed, plan.offsets, max_overlaps)
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


def _overlap_errors(placed: list[Buffer], offsets: dict[str, int], limit: int) -> list[str]:
    """Pairs alive at the same time that share bytes, found by a sweep over time.

    The fast path keeps the live buffers sorted by offset and checks each newcomer against its
    two neighbours: while no pair has overlapped, live byte ranges are disjoint, so neighbours
    are the only candidates. On the first hit, ``_all_overlaps`` lists every pair.
    """
    events = sorted(
        [(b.end, 0, i) for i, b in enumerate(placed)]
        + [(b.start, 1, i) for i, b in enumerate(placed)]
    )  # at equal times ends (0) come before starts (1): [s, e) intervals touching is fine
    live_off: list[tuple[int, int]] = []  # (offset, index), sorted
    for _, is_start, i in events:
        key = (offsets[placed[i].id], i)
        if not is_start:
            del live_off[bisect.bisect_left(live_off, key)]
            continue
        pos = bisect.bisect_left(live_off, key)
        below = pos > 0 and _top(placed, offsets, live_off[pos - 1][1]) > key[0]
        above = pos < len(live_off) and live_off[pos][0] < key[0] + placed[i].size
        if below or above:
            return _all_overlaps(placed, offsets, events, limit)
        live_off.insert(pos, key)
    return []


def _top(placed: list[Buffer], offsets: dict[str, int], i: int) -> int:
    return offsets[placed[i].id] + placed[i].size


def _all_overlaps(
    placed: list[Buffer], offsets: dict[str, int], events: list, limit: int
) -> list[str]:
    """Every overlapping pair (up to ``limit``) in O((n + k) log n) with a max-segment tree.

    Leaves are the buffers ranked by offset and hold a live buffer's end byte (or -1). When a
    buffer starts, the live buffers sharing its bytes are exactly the leaves ranked below its
    end byte whose end byte is above its offset; the tree prunes every subtree without one.
    """
    order = sorted(range(len(placed)), key=lambda i: (offsets[placed[i].id], i))
    rank = {i: r for r, i in enumerate(order)}
    sorted_offs = [offsets[placed[i].id] for i in order]
    size = 1
    while size < max(1, len(order)):
        size *= 2
    tree = [-1] * (2 * size)
    found: list[str] = []
    for _, is_start, i in events:
        if is_start:
            off = offsets[placed[i].id]
            hi = bisect.bisect_left(sorted_offs, off + placed[i].size)
            for leaf in _leaves_above(tree, size, hi, off):
                found.append(_describe(placed, offsets, order[leaf], i))
                if len(found) >= limit:
                    found.append(f"... stopped after {limit} overlapping pairs; there are more")
                    return found
        _set_leaf(tree, size, rank[i], _top(placed, offsets, i) if is_start else -1)
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


def _describe(placed: list[Buffer], offsets: dict[str, int], j: int, i: int) -> str:
    a, b = placed[j], placed[i]
    oa, ob = offsets[a.id], offsets[b.id]
    return (
        f"buffer {a.id!r} (time [{a.start},{a.end}), bytes [{oa},{oa + a.size})) overlaps "
        f"buffer {b.id!r} (time [{b.start},{b.end}), bytes [{ob},{ob + b.size}))"
    )
