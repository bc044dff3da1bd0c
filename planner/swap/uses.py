"""What the swap planners plan over: each buffer's uses, EO by EO.

A buffer (an alias class of tensors sharing bytes) is *used* at an EO when an op at that EO
reads or writes one of its tensors. Between two consecutive uses lies a *gap* in which the
buffer may leave RAM: evicted after the first use (written to storage only if its bytes changed
since storage last held them) and prefetched before the second (read back only if that use
reads the old bytes). Persistent buffers (weights, optimizer state) must survive the iteration;
they are either pinned in RAM for all of it or start and end in storage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from trainplan.planner.graph import replay_edges
from trainplan.planner.order import ExecutionOrder, Lifespan


@dataclass(frozen=True)
class Use:
    """The ops of one EO on one buffer: does any read it, does any write it."""

    eo: int
    reads: bool
    writes: bool


@dataclass(frozen=True)
class BufferUses:
    """A buffer's uses in EO order; ``persistent`` ones live across iterations."""

    tensor: str
    nbytes: int
    role: str
    start: int
    end: int
    uses: tuple[Use, ...]
    persistent: bool

    @property
    def use_eos(self) -> tuple[int, ...]:
        return tuple(u.eo for u in self.uses)


def buffer_uses(graph: nx.DiGraph, eo: ExecutionOrder, spans: dict[str, Lifespan],
                replays: Iterable[tuple[str, int]] = ()) -> dict[str, BufferUses]:
    """Uses of every planned buffer (external placeholders excluded); ``replays`` (op, EO) are
    forward ops run again to recompute their results (graph.replay_edges)."""
    member_root = {m: root for root, s in spans.items() for m in s.members}
    touched: dict[str, dict[int, list[bool]]] = {}
    # replays run first in their EO: a buffer they rewrite is not read as it was before the EO
    runs = [(e, *replay_edges(graph, op), True) for op, e in replays]
    runs += [(e, list(graph.predecessors(op)), list(graph.successors(op)), False)
             for op, e in eo.op_eo.items()]
    rewritten: set[tuple[str, int]] = set()
    for e, reads, writes, replay in runs:
        for t in reads:
            if t in member_root:
                use = touched.setdefault(member_root[t], {}).setdefault(e, [False, False])
                use[0] = use[0] or (member_root[t], e) not in rewritten
        for t in writes:
            if t in member_root:
                touched.setdefault(member_root[t], {}).setdefault(e, [False, False])[1] = True
                if replay:
                    rewritten.add((member_root[t], e))
    out = {}
    for root, s in spans.items():
        if s.pool == "external":
            continue
        uses = tuple(Use(e, r, w) for e, (r, w) in sorted(touched.get(root, {}).items())
                     if s.pool == "weight" or s.start <= e < s.end)
        out[root] = BufferUses(root, s.nbytes, s.role, s.start, s.end, uses,
                               persistent=s.pool == "weight")
    return out


def value_segments(buffers: dict[str, BufferUses]
                   ) -> tuple[dict[str, BufferUses], dict[str, tuple[str, int]]]:
    """Each buffer cut where its value dies: between a use and a later use that writes without
    reading (a recomputation), nothing needs the bytes, so every swap and offset planner can
    treat the two values as separate buffers. Returns the segments (keyed by fresh ids) and the
    table from a segment's id to (buffer, index); a buffer that never dies keeps its own id."""
    segments: dict[str, BufferUses] = {}
    owner: dict[str, tuple[str, int]] = {}
    for key, b in buffers.items():
        cuts = [i for i in range(1, len(b.uses)) if not b.persistent
                and b.uses[i].writes and not b.uses[i].reads
                and b.uses[i].eo > b.uses[i - 1].eo + 1]
        if not cuts:
            segments[key], owner[key] = b, (key, 0)
            continue
        bounds = [0, *cuts, len(b.uses)]
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            uses = b.uses[lo:hi]
            ident = f"{key}\x1f{k}"  # a fresh id, mapped back through ``owner``, never parsed
            start = b.start if k == 0 else uses[0].eo
            end = b.end if k == len(bounds) - 2 else uses[-1].eo + 1
            segments[ident] = BufferUses(ident, b.nbytes, b.role, start, end, uses, False)
            owner[ident] = (key, k)
    return segments, owner
