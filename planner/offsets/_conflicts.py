"""Which buffers must stay apart, and how far: MiniMalloc's effective sizes, for gaps.

Without gaps, two buffers conflict when their lifetimes overlap, and the one on top starts at
least the lower one's size above it. With gaps, only the parts in use matter: when ``b`` sits
above ``a``, every part of ``a`` in use must end below every part of ``b`` in use at the same
time, so ``b`` starts at least ``effective_size(a, b)`` above ``a`` (the largest
``a.hi - b.lo`` over parts in use together; it may be small or negative when gap windows line
up), and ``None`` means they are never in use together. Planners built on this keep one buffer
wholly above the other where they meet, as MiniMalloc does; the validator checks bytes only.

>>> from trainplan.planner.allocation import Buffer, Gap
>>> a, b = Buffer("a", 0, 4, 8, gaps=(Gap(1, 3, (0, 2)),)), Buffer("b", 1, 3, 4)
>>> effective_size(a, b), effective_size(b, a)  # b may start 2 bytes above a, inside a's gap
(2, 4)
>>> effective_size(Buffer("x", 0, 4, 8, gaps=(Gap(1, 3),)), b) is None
True
"""

from __future__ import annotations

from trainplan.planner.allocation import Buffer


def effective_size(a: Buffer, b: Buffer) -> int | None:
    """How far above ``a``'s offset ``b`` must start when it sits above ``a``; None when the
    two are never in use at the same time."""
    if a.end <= b.start or b.end <= a.start:
        return None
    if not a.gaps and not b.gaps:
        return a.size
    best = None
    for s0, e0, _, hi in a.pieces():
        for s1, e1, lo, _ in b.pieces():
            if s0 < e1 and s1 < e0 and (best is None or hi - lo > best):
                best = hi - lo
    return best
