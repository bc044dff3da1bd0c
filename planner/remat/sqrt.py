"""Chen et al.'s √n checkpointing (2016), generalised to branching graphs.

The candidate groups, in topological order, are cut into about √n consecutive segments; the
outputs leaving a segment are kept (checkpoints) while what it computes inside is dropped after
its forward use and recomputed, segment by segment, at the segment's first backward EO. The
segment nearest the loss is not recomputed: its backward follows right after its forward.
Where a branch makes a replay read a value that has changed (planner/remat/replays.py), that
segment is kept as it is.
"""

from __future__ import annotations

import math

import networkx as nx

from trainplan.planner.order import ExecutionOrder
from trainplan.planner.remat.evaluate import live_with
from trainplan.planner.remat.groups import Group
from trainplan.planner.remat.replays import conflicts, group_replays


def sqrt_segments(groups: list[Group], count: int | None = None) -> list[list[Group]]:
    """``count`` (default ⌈√n⌉) consecutive segments of about equal size."""
    n = len(groups)
    if n == 0:
        return []
    count = max(1, min(n, count or math.ceil(math.sqrt(n))))
    size = math.ceil(n / count)
    return [groups[i:i + size] for i in range(0, n, size)]


def plan_sqrt(graph: nx.DiGraph, eo: ExecutionOrder, groups: list[Group], *,
              info: dict | None = None, **_) -> list[tuple[str, int]]:
    """Replays of every segment but the last, without those whose replays would change a
    value. Of ⌈√n⌉ segments and the counts around it (half, double), the one with the lowest
    peak of live bytes; none when no count lowers the peak (small models, where the replays'
    own working set outweighs what they free)."""
    root = math.ceil(math.sqrt(len(groups))) if groups else 0
    best, best_peak = [], int(live_with(graph, eo, []).max(initial=0))
    for count in sorted({max(2, root // 2), root, 2 * root}):
        replays = _valid_replays(graph, eo, sqrt_segments(groups, count)[:-1])
        peak = int(live_with(graph, eo, replays).max(initial=0)) if replays else best_peak
        if peak < best_peak:
            best, best_peak = replays, peak
            if info is not None:
                info["segments"] = count
    return best


def _valid_replays(graph: nx.DiGraph, eo: ExecutionOrder, segments: list[list[Group]]
                   ) -> list[tuple[str, int]]:
    while segments:
        replays = group_replays(segments)
        bad = conflicts(graph, eo, replays)
        if not bad:
            return replays
        segments = [s for s in segments if not any(op in bad for g in s for op in g.forward_ops)]
    return []
