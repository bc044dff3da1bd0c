"""What the swap planners plan over: each buffer's uses, EO by EO.

A buffer (an alias class of tensors sharing bytes) is *used* at an EO when an op at that EO
reads or writes one of its tensors. Between two consecutive uses lies a *gap* in which the
buffer may leave RAM: evicted after the first use (written to storage only if its bytes changed
since storage last held them) and prefetched before the second (read back only if that use
reads the old bytes). Persistent buffers (weights, optimizer state) must survive the iteration;
they are either pinned in RAM for all of it or start and end in storage.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

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


def buffer_uses(graph: nx.DiGraph, eo: ExecutionOrder,
                spans: dict[str, Lifespan]) -> dict[str, BufferUses]:
    """Uses of every planned buffer (external placeholders excluded)."""
    member_root = {m: root for root, s in spans.items() for m in s.members}
    touched: dict[str, dict[int, list[bool]]] = {}
    for op in eo.op_eo:
        e = eo.op_eo[op]
        for t in graph.predecessors(op):
            if t in member_root:
                touched.setdefault(member_root[t], {}).setdefault(e, [False, False])[0] = True
        for t in graph.successors(op):
            if t in member_root:
                touched.setdefault(member_root[t], {}).setdefault(e, [False, False])[1] = True
    out = {}
    for root, s in spans.items():
        if s.pool == "external":
            continue
        uses = tuple(Use(e, r, w) for e, (r, w) in sorted(touched.get(root, {}).items())
                     if s.pool == "weight" or s.start <= e < s.end)
        out[root] = BufferUses(root, s.nbytes, s.role, s.start, s.end, uses,
                               persistent=s.pool == "weight")
    return out
