"""The ``greedy`` remat planner: recompute what is cheap per byte, until live bytes fit.

Groups are ranked by the cost of running them again over the bytes they hold across the
iteration's turn from forward to backward (what recomputing them frees at the peak); the
shortest prefix of that ranking whose replays bring the live peak within the budget is taken
(found by bisection over the prefix length; each group runs again at its first backward need).
"""

from __future__ import annotations

import networkx as nx

from trainplan.planner.order import ExecutionOrder
from trainplan.planner.remat.evaluate import live_with
from trainplan.planner.remat.groups import Group
from trainplan.planner.remat.replays import conflicts, group_replays


def cheap_first(graph: nx.DiGraph, eo: ExecutionOrder, groups: list[Group]) -> list[Group]:
    """Groups by cost over bytes written, cheapest per byte first."""
    size = {}
    for g in groups:
        size[g] = sum(graph.nodes[b]["nbytes"] for b in g.writes) or 1
    return sorted(groups, key=lambda g: g.cost / size[g])


def plan_greedy(graph: nx.DiGraph, eo: ExecutionOrder, groups: list[Group], *,
                budget: int | None = None, info: dict | None = None, **_
                ) -> list[tuple[str, int]]:
    """The cheapest-per-byte prefix whose replays fit ``budget`` live bytes (None: all of
    them that change no value); the longest prefix when none fits."""
    ranked = cheap_first(graph, eo, groups)

    def replays(n: int) -> list[tuple[str, int]]:
        chosen = sorted(ranked[:n], key=groups.index)
        return sorted(group_replays([[g] for g in chosen]), key=lambda r: r[1])
    valid = [g for g in ranked if not conflicts(graph, eo, group_replays([[g]]))]
    ranked = valid
    if budget is None:
        return replays(len(ranked))
    lo, hi = 0, len(ranked)
    if int(live_with(graph, eo, replays(hi)).max(initial=0)) > budget:
        return replays(hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if int(live_with(graph, eo, replays(mid)).max(initial=0)) <= budget:
            hi = mid
        else:
            lo = mid + 1
    if info is not None:
        info["groups"] = hi
    return replays(hi)
