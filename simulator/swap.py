"""Swap plans -> the engine's inputs: transfers, the resident curve and resident intervals.

A plan made under a RAM budget (``trainplan.planner.plan_graph.plan_graph_swap``) holds a swap schedule
(resident pieces per buffer, evictions, prefetches) and the offsets of every piece in one
arena. An eviction that writes becomes a write transfer whose ``deadline_eo`` is the first EO
at which another piece takes any of its bytes (next iteration's EOs count on past ``n_eo``), so
the engine delays that reuse until the write is done; a prefetch that reads becomes a read
transfer due at its use.
"""

from __future__ import annotations

import numpy as np

from trainplan.simulator.engine import Transfer


def is_swap_plan(plan) -> bool:
    """A plan with a swap schedule (duck-typed: ``plan.arena.schedule``)."""
    return hasattr(getattr(plan, "arena", None), "schedule")


def _pieces(arena) -> tuple[dict[str, list[tuple[int, int, int, int]]], np.ndarray]:
    """tensor -> [(start, end, offset, nbytes)] of its resident pieces, and all pieces as an
    array sorted by start."""
    offsets = arena.plan.offsets
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    for t, pieces in arena.schedule.resident.items():
        size = arena.schedule.sizes[t]
        out[t] = [(a, z, offsets[f"{t}#{i}"], size) for i, (a, z) in enumerate(pieces)]
    flat = np.array([p for rows in out.values() for p in rows], dtype=np.int64).reshape(-1, 4)
    return out, flat[np.argsort(flat[:, 0], kind="stable")]


def _reuse_eo(cols: tuple[np.ndarray, ...], after: int, lo: int, hi: int,
              n_eo: int) -> int | None:
    """First EO after ``after`` at which a piece takes bytes of [lo, hi): this iteration's
    first, else the next iteration's (+ n_eo). ``cols``: piece starts, offsets and ends in
    start order. Scans blocks of doubling size: reuse is usually close."""
    starts, offs, ends = cols
    first = int(np.searchsorted(starts, after + 1))
    for begin, stop, shift in ((first, len(starts), 0), (0, first, n_eo)):
        b, width = begin, 64
        while b < stop:
            e = min(b + width, stop)
            hit = (offs[b:e] < hi) & (ends[b:e] > lo)
            i = int(hit.argmax())
            if hit[i]:
                return int(starts[b + i]) + shift
            b, width = e, width * 2
    return None


def swap_inputs(arena, n_eo: int) -> tuple[list[Transfer], np.ndarray, dict]:
    """The schedule as engine inputs: transfers (moving evictions and prefetches), the
    resident curve (the arena's high-water mark as pieces first touch it) and the resident
    [start, end) EO pieces per buffer (for the live-bytes curves)."""
    pieces, flat = _pieces(arena)
    cols = (flat[:, 0].copy(), flat[:, 2].copy(), flat[:, 2] + flat[:, 3])
    transfers = []
    for e in arena.schedule.evictions:
        if e.write:
            lo, hi = next(((o, o + n) for a, z, o, n in pieces[e.tensor]
                           if z == e.after_eo + 1), (0, 0))
            transfers.append(Transfer(e.tensor, "write", e.nbytes, e.after_eo,
                                      _reuse_eo(cols, e.after_eo, lo, hi, n_eo)))
    transfers += [Transfer(p.tensor, "read", p.nbytes, p.start_eo, p.use_eo)
                  for p in arena.schedule.prefetches if p.read]
    tops = np.zeros(n_eo, dtype=np.int64)
    if len(flat):
        np.maximum.at(tops, flat[:, 0].clip(0, n_eo - 1), flat[:, 2] + flat[:, 3])
    return transfers, np.maximum.accumulate(tops), dict(arena.schedule.resident)
