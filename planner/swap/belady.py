"""Belady's rule under a RAM budget: evict the resident buffer whose next use is furthest.

Pass 1 walks the EOs: every buffer used at an EO must be in RAM there; while the bytes in RAM
exceed the budget, the buffer not used now whose next use is furthest leaves RAM right after
its last use (offline, so the eviction is placed as early as possible). Pass 2 pins back,
largest first, the weights whose only trip to storage was the one around the iteration
boundary, where they fit. Pass 3 moves each prefetch as early as the budget allows, most
urgent first.
"""

from __future__ import annotations

import heapq

import numpy as np

from trainplan.planner.errors import Infeasible
from trainplan.planner.swap.lookahead import lookahead_gaps
from trainplan.planner.swap.schedule import Gap
from trainplan.planner.swap.uses import BufferUses
from trainplan.planner.swap.working_set import min_budget


def belady_gaps(buffers: dict[str, BufferUses], n_eo: int, budget: int, *,
                evict_all: bool = False, early: bool = True,
                floor: int | None = None) -> list[Gap]:
    """Gap choices that keep RAM within ``budget`` at every EO.

    ``evict_all`` replaces pass 1 by leaving RAM in every gap (NNTrainer's lookahead 0): more
    I/O, but short resident pieces that pack into the budget without fragmentation;
    ``early=False`` then also skips passes 2 and 3 (no pinning, every prefetch just in time).
    ``floor``: the minimum budget when the caller knows it already.
    """
    need = min_budget(buffers, n_eo) if floor is None else floor
    if budget < need:
        raise Infeasible(f"budget {budget} bytes is below the minimum feasible budget: needs "
                         f"at least {need} bytes (the largest working set of one EO)", need)
    gaps = lookahead_gaps(buffers, n_eo, 0) if evict_all else _evict(buffers, n_eo, budget)
    if evict_all and not early:
        return gaps
    gaps = _pin_weights(buffers, gaps, n_eo, budget)
    return _prefetch_early(buffers, gaps, n_eo, budget)


def _evict(buffers, n_eo: int, budget: int) -> list[Gap]:
    uses_at: dict[int, list[str]] = {}
    for b in buffers.values():
        for e in b.use_eos:
            uses_at.setdefault(e, []).append(b.tensor)
    resident: dict[str, int] = {}  # tensor -> index of its last use so far
    used = 0
    gaps: list[Gap] = []
    heap: list[tuple[int, str]] = []  # (-next use, tensor) of resident buffers
    for e in range(n_eo):
        for t in uses_at.get(e, []):
            b = buffers[t]
            i = b.use_eos.index(e)
            if t not in resident:
                used += b.nbytes
                if i == 0 and b.persistent:
                    gaps.append(Gap(t, -1, e, e))
            resident[t] = i
            nxt = b.use_eos[i + 1] if i + 1 < len(b.uses) else _after_last(b, n_eo)
            heapq.heappush(heap, (-nxt, t))
        while used > budget:
            used -= _evict_one(buffers, resident, heap, gaps, e, n_eo)
        for t in uses_at.get(e, []):  # non-persistent buffers die after their last use
            b = buffers[t]
            if resident.get(t) == len(b.uses) - 1 and not b.persistent and e + 1 >= b.end:
                used -= b.nbytes
                del resident[t]
    for t, i in resident.items():  # weights end the iteration in storage
        b = buffers[t]
        if b.persistent:
            gaps.append(Gap(t, b.use_eos[i], n_eo, n_eo))
    return gaps


def _after_last(b: BufferUses, n_eo: int) -> int:
    return n_eo + b.use_eos[0] if b.persistent else b.end


def _evict_one(buffers, resident, heap, gaps, e: int, n_eo: int) -> int:
    busy = []  # entries of buffers in use now: cannot leave, but keep them for later
    try:
        return _pop_victim(buffers, resident, heap, gaps, e, n_eo, busy)
    finally:
        for entry in busy:
            heapq.heappush(heap, entry)


def _pop_victim(buffers, resident, heap, gaps, e: int, n_eo: int, busy: list) -> int:
    while heap:
        neg, t = heapq.heappop(heap)
        if t not in resident:
            continue
        b = buffers[t]
        i = resident[t]
        if b.use_eos[i] == e:
            busy.append((neg, t))
            continue
        current = b.use_eos[i + 1] if i + 1 < len(b.uses) else _after_last(b, n_eo)
        if -neg != current:
            continue  # stale entry
        before = b.use_eos[i + 1] if i + 1 < len(b.uses) else n_eo
        gaps.append(Gap(t, b.use_eos[i], before, before))
        del resident[t]
        return b.nbytes
    raise AssertionError("over budget with nothing evictable; min_budget should prevent this")


def _curve(buffers, gaps, n_eo) -> np.ndarray:
    from trainplan.planner.swap.schedule import build_schedule
    return build_schedule("belady", buffers, gaps, n_eo, 0).resident_curve()


def _prefetch_early(buffers, gaps: list[Gap], n_eo: int, budget: int) -> list[Gap]:
    curve = _curve(buffers, gaps, n_eo)
    out = []
    for g in sorted(gaps, key=lambda g: g.before):
        if g.before >= n_eo:
            out.append(g)
            continue
        size = buffers[g.tensor].nbytes
        p, floor = g.before, max(g.after + 2, 0)
        while p - 1 >= floor and curve[p - 1] + size <= budget:
            p -= 1
        curve[p:g.before] += size
        out.append(Gap(g.tensor, g.after, g.before, p))
    return out


def _pin_weights(buffers, gaps: list[Gap], n_eo: int, budget: int) -> list[Gap]:
    """Keep in RAM the weights that only crossed the iteration boundary, where they fit."""
    by_tensor: dict[str, list[Gap]] = {}
    for g in gaps:
        by_tensor.setdefault(g.tensor, []).append(g)
    curve = _curve(buffers, gaps, n_eo)
    for t in sorted(by_tensor, key=lambda t: -buffers[t].nbytes):
        own = by_tensor[t]
        if not buffers[t].persistent or len(own) != 2:
            continue
        start, end = own[0].prefetch, own[1].after + 1
        extra = np.zeros(n_eo, dtype=np.int64)
        extra[:start] = extra[end:] = buffers[t].nbytes
        if (curve + extra).max() <= budget:
            curve += extra
            del by_tensor[t]
    return [g for own in by_tensor.values() for g in own]
