"""Executing a plan's transfers: tensors live at the offset of their current resident piece
(runtime/layout.py), and a controller moves bytes between the arena and the swap file around
every EO.

Before EO ``e``: start the prefetches the schedule starts at ``e``; for buffers created at
``e``, wait for evictions still writing out bytes they reuse; wait for every prefetch EO ``e``
uses (a late one is a stall, timed). After EO ``e``: write out what the schedule evicts after
``e`` when storage lacks its current bytes.
"""

from __future__ import annotations

import numpy as np

from trainplan.runtime.layout import ArenaLayout
from trainplan.runtime.swapio import SwapFile, Ticket, page_round


class SwapController:
    """Moves buffers between the arena and the swap file as the plan's transfers say."""

    def __init__(self, layout: ArenaLayout, swapfile: SwapFile):
        self.layout, self.file = layout, swapfile
        plan = layout.plan
        moving = sorted({t.buffer for t in (*plan.evictions, *plan.prefetches)})
        self.slot, end = {}, 0
        for buffer in moving:
            self.slot[buffer] = end
            end += page_round(layout.nbytes[buffer])  # whole pages: cache advice
        self.file_bytes = end
        self.fetch_at = _by(plan.prefetches, "start_eo")
        self.evict_at = _by(plan.evictions, "after_eo")
        self.created_at: dict[int, list[str]] = {}
        fetched = {(p.buffer, p.piece) for p in plan.prefetches}
        for buffer, pieces in layout.pieces.items():
            for i, piece in enumerate(pieces):
                if (buffer, i) not in fetched:
                    self.created_at.setdefault(piece.start, []).append(buffer)
        self.starts_stored = {p.buffer for p in plan.prefetches if p.piece == 0}
        self.pending_reads: dict[int, list[Ticket]] = {}
        self.pending_writes: list[tuple[int, int, Ticket]] = []
        self.stall_seconds = 0.0

    def before_eo(self, e: int) -> None:
        for p in self.fetch_at.get(e, []):
            piece = self.layout.pieces[p.buffer][p.piece]
            if p.read:
                ticket = self.file.read(self.layout.bytes_of(p.buffer, piece),
                                        self.slot[p.buffer], p.buffer)
                self.pending_reads.setdefault(p.use_eo, []).append(ticket)
        for buffer in self.created_at.get(e, []):
            off = self.layout.piece_at(buffer, e).offset
            self._wait_writes(off, off + self.layout.nbytes[buffer])
        for ticket in self.pending_reads.pop(e, []):
            self.stall_seconds += ticket.wait()

    def after_eo(self, e: int) -> None:
        for ev in self.evict_at.get(e, []):
            if not ev.write:
                continue
            piece = self.layout.pieces[ev.buffer][ev.piece]
            ticket = self.file.write(self.layout.bytes_of(ev.buffer, piece),
                                     self.slot[ev.buffer], ev.buffer)
            self.pending_writes.append((piece.offset, piece.offset + ev.nbytes, ticket))
        self.pending_writes = [w for w in self.pending_writes if not w[2].done or w[2].error]

    def _wait_writes(self, lo: int, hi: int) -> None:
        for a, b, ticket in self.pending_writes:
            if a < hi and lo < b:
                self.stall_seconds += ticket.wait()

    def flush(self) -> None:
        """Wait for every transfer (before a checkpoint, at the end)."""
        for *_, ticket in self.pending_writes:
            ticket.wait()
        self.pending_writes = []
        for tickets in self.pending_reads.values():
            for t in tickets:
                t.wait()
        self.pending_reads = {}

    def store(self, buffer: str, values: np.ndarray) -> None:
        """Put a buffer's bytes where the iteration expects them at its start."""
        if buffer in self.starts_stored:
            self.file.write(values, self.slot[buffer], buffer).wait()
        else:
            piece = self.layout.pieces[buffer][0]
            self.layout.bytes_of(buffer, piece)[:] = values.reshape(-1).view(np.uint8)

    def load(self, buffer: str) -> np.ndarray:
        """A persistent buffer's current bytes (from RAM or from the file), as uint8."""
        self.flush()
        if buffer in self.starts_stored:
            out = np.empty(self.layout.nbytes[buffer], dtype=np.uint8)
            self.file.read(out, self.slot[buffer], buffer).wait()
            return out
        return self.layout.bytes_of(buffer, self.layout.pieces[buffer][0]).copy()


def _by(items, key: str) -> dict[int, list]:
    out: dict[int, list] = {}
    for item in items:
        out.setdefault(getattr(item, key), []).append(item)
    return out
