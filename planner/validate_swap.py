"""The validator, extended to swap schedules: every planned swap goes through it.

Independent of the swap planners, it checks a SwapSchedule against the buffers' uses:

* at every EO each buffer a step reads or writes is resident (its pieces cover the use);
* bytes resident (prefetches in flight included) never exceed the budget;
* nothing read back is stale: a piece that starts after the buffer left RAM is a prefetch
  that reads the bytes when its use needs them, and storage then holds the current bytes
  (the last change was written back, or came from storage); weights leaving RAM at the end of
  the iteration are written back when they changed;
* every eviction and prefetch matches a piece boundary, and pieces stay inside the buffer's
  life (the whole iteration for persistent buffers, which are pinned or start and end it in
  storage).
"""

from __future__ import annotations

import numpy as np

from trainplan.planner.swap.schedule import SwapSchedule
from trainplan.planner.swap.uses import BufferUses


def validate_swap(buffers: dict[str, BufferUses], schedule: SwapSchedule) -> list[str]:
    """Every rule the schedule breaks, one sentence each; [] when valid."""
    errors = []
    for t, b in buffers.items():
        pieces = sorted(schedule.resident.get(t, ()))
        if not pieces and b.uses:
            errors.append(f"buffer {t!r} is used but never resident")
            continue
        errors += _piece_errors(b, pieces, schedule.n_eo)
        errors += _use_errors(b, pieces)
        errors += _transfer_errors(b, pieces, schedule)
    errors += _budget_errors(buffers, schedule)
    return errors


def _piece_errors(b: BufferUses, pieces, n_eo: int) -> list[str]:
    lo, hi = (0, n_eo) if b.persistent else (b.start, b.end)
    errors = []
    for (a, z), (c, _) in zip(pieces, pieces[1:]):
        if c <= z:
            errors.append(f"buffer {b.tensor!r}: pieces [{a},{z}) and [{c},...) overlap or "
                          "touch; merge them")
    for a, z in pieces:
        if a < lo or z > hi or z <= a:
            errors.append(f"buffer {b.tensor!r}: piece [{a},{z}) outside its life [{lo},{hi})")
    return errors


def _use_errors(b: BufferUses, pieces) -> list[str]:
    starts = [a for a, _ in pieces]
    errors = []
    for u in b.uses:
        i = np.searchsorted(starts, u.eo, side="right") - 1
        if i < 0 or not pieces[i][0] <= u.eo < pieces[i][1]:
            errors.append(f"buffer {b.tensor!r} is used at EO {u.eo} but not resident")
    return errors


def _transfer_errors(b: BufferUses, pieces, schedule: SwapSchedule) -> list[str]:
    """Walk the buffer's pieces tracking whether RAM and storage hold its current bytes."""
    t = b.tensor
    evict = {e.after_eo: e for e in schedule.evictions if e.tensor == t}
    fetch = {p.start_eo: p for p in schedule.prefetches if p.tensor == t}
    uses = list(b.uses)
    in_storage = b.persistent  # storage holds the current bytes
    errors = []
    if b.persistent:  # pinned across the boundary, or starts and ends the iteration in storage
        starts, ends = pieces[0][0] in fetch, (pieces[-1][1] - 1) in evict
        if starts != ends or (not starts and len(pieces) > 1):
            errors.append(f"weight {t!r} must be pinned in RAM for the whole iteration or start "
                          "and end it in storage")
    for i, (a, z) in enumerate(pieces):
        later = [u for u in uses if u.eo >= a]
        first = later[0] if later else None
        starts_fresh = i == 0 and (not b.persistent or a not in fetch)
        if not starts_fresh:
            p = fetch.pop(a, None)
            needs = first is not None and first.reads
            if p is None:
                errors.append(f"buffer {t!r}: piece at EO {a} has no prefetch")
            elif needs and not (p.read and in_storage):
                errors.append(f"buffer {t!r}: read back at EO {a} is stale or missing")
        changed = any(u.writes for u in uses if a <= u.eo < z)
        in_storage = in_storage and not changed
        last = i == len(pieces) - 1
        if last and (not b.persistent or (z - 1) not in evict):
            continue  # dies (or stays pinned) at the end of its life
        e = evict.pop(z - 1, None)
        if e is None:
            errors.append(f"buffer {t!r}: leaves RAM after EO {z - 1} without an eviction")
            continue
        nxt = next((u for u in uses if u.eo >= z), None)
        needed = nxt.reads if nxt is not None else (b.persistent and uses[0].reads)
        if needed and not in_storage and not e.write:
            errors.append(f"buffer {t!r}: evicted after EO {z - 1} without writing bytes "
                          "that are read again")
        in_storage = in_storage or e.write
    errors += [f"buffer {t!r}: eviction after EO {x} matches no piece end" for x in evict]
    errors += [f"buffer {t!r}: prefetch at EO {x} matches no piece start" for x in fetch]
    return errors


def _budget_errors(buffers: dict[str, BufferUses], schedule: SwapSchedule) -> list[str]:
    delta = np.zeros(schedule.n_eo + 1, dtype=np.int64)
    for t, b in buffers.items():
        for a, z in schedule.resident.get(t, ()):
            delta[a] += b.nbytes
            delta[z] -= b.nbytes
    curve = np.cumsum(delta)[: schedule.n_eo]
    over = np.flatnonzero(curve > schedule.budget_bytes)
    if len(over):
        e = int(over[0])
        return [f"{int(curve[e])} bytes resident at EO {e} exceed the budget "
                f"{schedule.budget_bytes} ({len(over)} EOs over)"]
    return []
