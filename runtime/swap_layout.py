"""Executing a swap schedule: tensors live at the offset of their current resident piece, and
a controller moves bytes between the arena and the swap file around every EO.

Before EO ``e``: start the prefetches the schedule starts at ``e``; for buffers created at
``e``, wait for evictions still writing out bytes they reuse; wait for every prefetch EO ``e``
uses (a late one is a stall, timed). After EO ``e``: write out what the schedule evicts after
``e`` when storage lacks its current bytes.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from trainplan.planner.graph import alias_root, tensors
from trainplan.planner.swap.arena import piece_id
from trainplan.planner.swap.schedule import SwapSchedule
from trainplan.runtime.layout import ALIGN, aligned_bytes, tensor_view
from trainplan.runtime.swapio import SwapFile, Ticket


class SwapLayout:
    """Views at the offset of the piece that covers the EO asked for."""

    def __init__(self, graph: nx.DiGraph, schedule: SwapSchedule, offsets: dict[str, int],
                 arena_bytes: int):
        self.graph, self.schedule = graph, schedule
        self.arena_bytes = arena_bytes
        self.arena = aligned_bytes(arena_bytes)
        self.root = {t: alias_root(graph, t) for t in tensors(graph)}
        self.pieces = {r: [(a, z, offsets[piece_id(r, i)]) for i, (a, z) in enumerate(p)]
                       for r, p in schedule.resident.items()}

    def piece_at(self, root: str, eo: int) -> tuple[int, int, int]:
        for piece in self.pieces[root]:
            if piece[0] <= eo < piece[1]:
                return piece
        raise KeyError(f"{root} is not resident at EO {eo}")

    def view(self, tensor: str, eo: int) -> np.ndarray:
        _, _, off = self.piece_at(self.root[tensor], eo)
        data = self.graph.nodes[tensor]
        return tensor_view(self.arena, off, data["shape"], data["dtype"])

    def has(self, tensor: str) -> bool:
        return self.root.get(tensor) in self.pieces

    def bytes_of(self, root: str, piece: tuple[int, int, int]) -> np.ndarray:
        return self.arena[piece[2]:piece[2] + self.schedule.sizes[root]]


class SwapController:
    """Moves buffers between the arena and the swap file as the schedule says."""

    def __init__(self, layout: SwapLayout, swapfile: SwapFile):
        self.layout, self.file = layout, swapfile
        s = layout.schedule
        self.slot, end = {}, 0
        for root in sorted(s.sizes):
            self.slot[root] = end
            end += -(-s.sizes[root] // ALIGN) * ALIGN
        self.file_bytes = end
        self.fetch_at = _by(s.prefetches, "start_eo")
        self.evict_at = _by(s.evictions, "after_eo")
        self.created_at: dict[int, list[str]] = {}
        fetched = {(p.tensor, p.start_eo) for p in s.prefetches}
        for root, pieces in layout.pieces.items():
            for a, _, _ in pieces:
                if (root, a) not in fetched:
                    self.created_at.setdefault(a, []).append(root)
        self.pending_reads: dict[int, list[Ticket]] = {}
        self.pending_writes: list[tuple[int, int, Ticket]] = []
        self.stall_seconds = 0.0

    def before_eo(self, e: int) -> None:
        for p in self.fetch_at.get(e, []):
            piece = self.layout.piece_at(p.tensor, p.use_eo)
            if p.read:
                ticket = self.file.read(self.layout.bytes_of(p.tensor, piece),
                                        self.slot[p.tensor], p.tensor)
                self.pending_reads.setdefault(p.use_eo, []).append(ticket)
        for root in self.created_at.get(e, []):
            _, _, off = self.layout.piece_at(root, e)
            self._wait_writes(off, off + self.layout.schedule.sizes[root])
        for ticket in self.pending_reads.pop(e, []):
            self.stall_seconds += ticket.wait()

    def after_eo(self, e: int) -> None:
        for ev in self.evict_at.get(e, []):
            if not ev.write:
                continue
            piece = self.layout.piece_at(ev.tensor, e)
            ticket = self.file.write(self.layout.bytes_of(ev.tensor, piece),
                                     self.slot[ev.tensor], ev.tensor)
            self.pending_writes.append((piece[2], piece[2] + ev.nbytes, ticket))
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

    def starts_in_storage(self, root: str) -> bool:
        return any(p.tensor == root and p.start_eo == self.layout.pieces[root][0][0]
                   for p in self.fetch_at.get(self.layout.pieces[root][0][0], []))

    def store(self, root: str, values: np.ndarray) -> None:
        """Put a buffer's bytes where the iteration expects them at its start."""
        if self.starts_in_storage(root):
            self.file.write(values, self.slot[root], root).wait()
        else:
            piece = self.layout.pieces[root][0]
            self.layout.bytes_of(root, piece)[:] = values.reshape(-1).view(np.uint8)

    def load(self, root: str) -> np.ndarray:
        """A persistent buffer's current bytes (from RAM or from the file), as uint8."""
        self.flush()
        if self.starts_in_storage(root):
            out = np.empty(self.layout.schedule.sizes[root], dtype=np.uint8)
            self.file.read(out, self.slot[root], root).wait()
            return out
        return self.layout.bytes_of(root, self.layout.pieces[root][0]).copy()


def _by(items, key: str) -> dict[int, list]:
    out: dict[int, list] = {}
    for item in items:
        out.setdefault(getattr(item, key), []).append(item)
    return out
