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


def expand_order(eo: ExecutionOrder, replays: Sequence[tuple[str, int]]
                 ) -> tuple[ExecutionOrder, list[tuple[str, int]]]:
    """The order with an EO of its own for every replay, just before the EO it was planned
    for (replays of one EO keep their order), so what one recomputed op needs is not counted
    at the same EO as the next one's; returns the order and the replays at their new EOs."""
    if not replays:
        return eo, []
    before: dict[int, int] = {}
    for _, e in replays:
        before[e] = before.get(e, 0) + 1
    shift, total, moved = {}, 0, []
    for e in range(eo.n_eo):
        total += before.get(e, 0)
        shift[e] = total
    slot: dict[int, int] = {}
    for op, e in replays:
        first = e + shift[e] - before[e]
        moved.append((op, first + slot.get(e, 0)))
        slot[e] = slot.get(e, 0) + 1
    layer_eos = {layer: {step: e + shift[e] for step, e in steps.items()}
                 for layer, steps in eo.layer_eos.items()}
    order = ExecutionOrder(eo.name, layer_eos, {op: e + shift[e] for op, e in eo.op_eo.items()},
                           eo.n_eo + len(replays))
    return order, moved
