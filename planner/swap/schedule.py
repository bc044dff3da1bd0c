"""A swap schedule: which buffers leave RAM in which gaps, and when they come back.

EO accounting: a buffer evicted after EO ``a`` frees its bytes from EO ``a + 1`` (the
simulator delays reuse of those bytes until the write has finished); a prefetch starting at
EO ``p`` for use at EO ``b`` holds its bytes from EO ``p`` (in flight included) on. An eviction
writes only when storage does not already hold the buffer's current bytes; a prefetch reads only
when the use it serves reads the old bytes. A persistent buffer (weights, optimizer state) is
either pinned in RAM for the whole iteration or starts and ends it in storage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from trainplan.planner.curves import occupancy, peak
from trainplan.planner.swap.uses import BufferUses
from trainplan.planner.training_plan import BytesMoved


@dataclass(frozen=True)
class Gap:
    """Buffer ``tensor`` leaves RAM after its use at ``after`` and is read back from ``prefetch``
    on for its use at ``before``. ``after = -1``: it starts the iteration in storage;
    ``before = n_eo``: it ends the iteration in storage (no prefetch)."""

    tensor: str
    after: int
    before: int
    prefetch: int


@dataclass(frozen=True)
class Eviction:
    tensor: str
    after_eo: int
    write: bool
    nbytes: int


@dataclass(frozen=True)
class Prefetch:
    tensor: str
    start_eo: int
    use_eo: int
    read: bool
    nbytes: int


@dataclass(frozen=True)
class SwapSchedule(BytesMoved):
    """Resident pieces per buffer plus the transfers that move buffers between them."""

    planner: str
    budget_bytes: int
    n_eo: int
    resident: dict[str, tuple[tuple[int, int], ...]]
    sizes: dict[str, int]
    evictions: tuple[Eviction, ...] = ()
    prefetches: tuple[Prefetch, ...] = ()
    options: dict = field(default_factory=dict)

    def resident_curve(self) -> np.ndarray:
        """Bytes in RAM at each EO (prefetches in flight included)."""
        return occupancy(((a, b, self.sizes[t]) for t, pieces in self.resident.items()
                          for a, b in pieces), self.n_eo)

    @property
    def peak_resident_bytes(self) -> int:
        return peak(self.resident_curve())

    def to_json(self) -> str:
        data = asdict(self)
        data["resident"] = {k: [list(p) for p in v] for k, v in self.resident.items()}
        return json.dumps(data, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> SwapSchedule:
        d = json.loads(text)
        d["resident"] = {k: tuple(tuple(p) for p in v) for k, v in d["resident"].items()}
        d["evictions"] = tuple(Eviction(**e) for e in d["evictions"])
        d["prefetches"] = tuple(Prefetch(**p) for p in d["prefetches"])
        return SwapSchedule(**d)


def build_schedule(planner: str, buffers: dict[str, BufferUses], gaps: list[Gap],
                   n_eo: int, budget: int, options: dict | None = None) -> SwapSchedule:
    """Turn gap choices into resident pieces and transfers, deciding which transfers move
    bytes: a write only when storage lacks the current bytes, a read only when needed."""
    by_tensor: dict[str, list[Gap]] = {}
    for g in gaps:
        by_tensor.setdefault(g.tensor, []).append(g)
    resident, evictions, prefetches = {}, [], []
    for t, b in buffers.items():
        chosen = sorted(by_tensor.get(t, []), key=lambda g: g.after)
        span = (0, n_eo) if b.persistent else (b.start, b.end)
        resident[t] = _pieces(span, chosen)
        ev, pf = _transfers(b, chosen)
        evictions += ev
        prefetches += pf
    return SwapSchedule(planner, budget, n_eo, resident, {t: b.nbytes for t, b in buffers.items()},
                        tuple(evictions), tuple(prefetches), options or {})


def _pieces(span: tuple[int, int], gaps: list[Gap]) -> tuple[tuple[int, int], ...]:
    pieces, start = [], span[0]
    for g in gaps:
        if g.after >= 0:
            pieces.append((start, g.after + 1))
        start = g.prefetch
    if not gaps or gaps[-1].before < span[1]:
        pieces.append((start, span[1]))
    return tuple((a, b) for a, b in pieces if b > a)


def _transfers(b: BufferUses, gaps: list[Gap]) -> tuple[list[Eviction], list[Prefetch]]:
    """Walk the uses tracking whether storage holds the buffer's current bytes: an eviction
    writes only when it does not and the bytes will be read again; a prefetch reads only when
    its use reads."""
    uses = {u.eo: u for u in b.uses}
    gap_at = {g.after: g for g in gaps}
    evictions, prefetches = [], []
    synced = -1 in gap_at  # starting in storage, storage holds the current bytes
    if -1 in gap_at:
        g = gap_at[-1]
        prefetches.append(Prefetch(b.tensor, g.prefetch, g.before, uses[g.before].reads,
                                   b.nbytes))
    for u in b.uses:
        synced = synced and not u.writes
        g = gap_at.get(u.eo)
        if g is None:
            continue
        nxt = uses.get(g.before)
        needed = nxt.reads if nxt is not None else b.uses[0].reads  # else: next iteration's
        write = needed and not synced
        evictions.append(Eviction(b.tensor, u.eo, write, b.nbytes))
        synced = synced or write
        if nxt is not None:
            prefetches.append(Prefetch(b.tensor, g.prefetch, g.before, nxt.reads, b.nbytes))
    return evictions, prefetches
