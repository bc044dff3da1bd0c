"""Replays from groups, and the check that a set of replays recomputes exactly the values the
plain iteration had: every read, by an op or by a replay, sees the version of its buffer that
the same read sees in the plain iteration (a replay restores the versions its op wrote)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import networkx as nx

from trainplan.planner.graph import alias_root, replay_edges
from trainplan.planner.order import ExecutionOrder
from trainplan.planner.remat.groups import Group

_RANK = {"forward": 0, "calc_gradient": 1, "calc_derivative": 2, "apply_gradient": 3}


def group_replays(segments: Iterable[Sequence[Group]]) -> list[tuple[str, int]]:
    """Each segment's forward ops, in forward order, run again at its first backward EO."""
    out = []
    for groups in segments:
        at = min(g.backward_eo for g in groups)
        out += [(op, at) for g in groups for op in g.forward_ops]
    return out


def conflicts(graph: nx.DiGraph, eo: ExecutionOrder,
              replays: Sequence[tuple[str, int]]) -> set[str]:
    """Replayed ops whose replay reads a version its op did not read, or that leave a buffer at
    a version a later read does not expect (empty: the replays change no number)."""
    plain = sorted(eo.op_eo, key=lambda op: (eo.op_eo[op], _RANK[graph.nodes[op]["step"]]))
    version: dict[str, int] = {}
    seen: dict[tuple[str, str], int] = {}      # (op, buffer) -> version it read
    made: dict[tuple[str, str], int] = {}      # (op, buffer) -> version it wrote
    for n, op in enumerate(plain):
        for t in graph.predecessors(op):
            seen[op, alias_root(graph, t)] = version.get(alias_root(graph, t), -1)
        for t in graph.successors(op):
            version[alias_root(graph, t)] = made[op, alias_root(graph, t)] = n
    events = [((e, -1, i), op, True) for i, (op, e) in enumerate(replays)]
    events += [((eo.op_eo[op], _RANK[graph.nodes[op]["step"]], 0), op, False) for op in plain]
    version, bad = {}, set()
    last_replay: dict[str, str] = {}
    for _, op, replay in sorted(events, key=lambda ev: ev[0]):
        reads, writes = replay_edges(graph, op) if replay else (
            list(graph.predecessors(op)), list(graph.successors(op)))
        for t in reads:
            root = alias_root(graph, t)
            if version.get(root, -1) != seen[op, root]:
                bad.add(op if replay else last_replay.get(root, op))
        for t in writes:
            root = alias_root(graph, t)
            version[root] = made[op, root]
            if replay:
                last_replay[root] = op
    return {op for op in bad if any(op == r for r, _ in replays)}
