"""The independent validator of TrainingPlans: it trusts the graph and nothing the planners
computed.

It shares no code with the planners: from the graph and the plan's execution order alone it
derives which bytes every op touches (alias classes from the graph's ``alias`` attributes, the
uses of every class EO by EO) and checks the plan against them:

* the plan is for this graph, and its order runs every op, each after the ops whose results it
  reads (ops of one EO run in step order: forward, calc_gradient, calc_derivative,
  apply_gradient);
* every planned buffer is exactly one alias class of the graph, no bigger or smaller (classes
  whose bytes are external, such as NNTrainer's input placeholders, are not planned);
* every piece is aligned, inside the arena, and no two pieces resident at the same EO share a
  byte; the arena is the highest byte in use, within the budget, and bytes resident at every EO
  stay within the budget;
* every use is resident, and every value a use reads is there: created by an earlier write
  (or the data fed in, or the weights' initial values), kept in RAM, or written to storage
  after its last change and read back; transfers match piece boundaries; persistent buffers
  (weights, optimizer state) are pinned for the whole iteration or start and end it in
  storage, written back when they changed;
* recomputation changes no number: every replayed op is a forward op, and every read — by an
  op or by a replay — sees the version of its bytes that the same read sees in the plain
  iteration (a replay writes again the versions its op wrote; it leaves the running
  statistics its op updates alone).

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.plan_training import plan_training
>>> from trainplan.planner.zoo import get_model
>>> from dataclasses import replace
>>> g = build_training_graph(get_model("mlp", batch=2))
>>> plan = plan_training(g)
>>> verify_plan(g, plan)
[]
>>> b = plan.buffers[-1]
>>> short = replace(b, pieces=(replace(b.pieces[0], end=b.pieces[0].start + 1),))
>>> verify_plan(g, replace(plan, buffers=plan.buffers[:-1] + (short,)))[0]  # doctest: +ELLIPSIS
"buffer '...' is used at EO ... but not resident"
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from itertools import pairwise

import networkx as nx
import numpy as np

from trainplan.planner.identity import fingerprint
from trainplan.planner.split import graph_for

_STEP_RANK = {"forward": 0, "calc_gradient": 1, "calc_derivative": 2, "apply_gradient": 3}
_DATA_ROLES = ("input", "label")  # filled from the data set when their bytes become theirs
MAX_ERRORS = 50


@dataclass(frozen=True)
class _Use:
    eo: int
    reads: bool
    writes: bool


def verify_plan(graph: nx.DiGraph, plan) -> list[str]:
    """Every rule ``plan`` breaks for ``graph`` (or for its split graph, when the plan splits
    steps), one sentence each; [] when it is valid."""
    graph = graph_for(graph, plan)
    if plan.graph.fingerprint != fingerprint(graph):
        return [(f"the plan was made for another graph ({plan.graph.describe()}, fingerprint "
                 f"{plan.graph.fingerprint}); this one has fingerprint {fingerprint(graph)}")]
    errors = _order_errors(graph, plan.order)
    if errors:
        return errors[:MAX_ERRORS]
    classes = _alias_classes(graph)
    errors += _buffer_errors(graph, classes, plan)
    if errors:
        return errors[:MAX_ERRORS]
    replays = [(r.op, r.eo) for r in plan.recomputes]
    errors += _replay_errors(graph, plan.order, replays, classes)
    if errors:
        return errors[:MAX_ERRORS]
    uses = _uses(graph, classes, plan.order.op_eo, replays)
    errors += _layout_errors(plan)
    for b in plan.buffers:
        root = classes[b.members[0]]
        errors += _residency_errors(graph, b, root, uses.get(root, []), plan)
        if len(errors) >= MAX_ERRORS:
            break
    errors += _transfer_match_errors(plan)
    return errors[:MAX_ERRORS]


# --- the order ---------------------------------------------------------------------------

def _order_errors(graph: nx.DiGraph, order) -> list[str]:
    ops = [n for n, d in graph.nodes(data=True) if d.get("kind") == "op"]
    errors = [f"op {op!r} has no EO in the plan's order" for op in ops if op not in order.op_eo]
    errors += [f"the order places {op!r}, which is not an op of the graph"
               for op in order.op_eo if op not in graph or graph.nodes[op].get("kind") != "op"]
    errors += [f"op {op!r} at EO {e} is outside [0, {order.n_eo})"
               for op, e in order.op_eo.items() if not 0 <= e < order.n_eo]
    if errors:
        return errors

    def position(op: str) -> tuple[int, int]:
        return order.op_eo[op], _STEP_RANK[graph.nodes[op]["step"]]

    for op in ops:
        for t in graph.successors(op):
            for reader in graph.successors(t):
                if position(reader) <= position(op):
                    errors.append(f"op {reader!r} (EO {order.op_eo[reader]}) reads {t!r} "
                                  f"before op {op!r} (EO {order.op_eo[op]}) writes it")
    return errors


# --- buffers -----------------------------------------------------------------------------

def _alias_classes(graph: nx.DiGraph) -> dict[str, str]:
    """Every tensor -> the tensor whose bytes it finally shares (following ``alias``)."""
    root = {}
    for t, d in graph.nodes(data=True):
        if d.get("kind") != "tensor":
            continue
        r, seen = t, set()
        while graph.nodes[r].get("alias") is not None and r not in seen:
            seen.add(r)
            r = graph.nodes[r]["alias"]
        root[t] = r
    return root


def _buffer_errors(graph: nx.DiGraph, classes: dict[str, str], plan) -> list[str]:
    """Planned buffers are exactly the graph's alias classes of planned, touched tensors."""
    touched = {t for t, d in graph.nodes(data=True) if d.get("kind") == "tensor"
               and graph.nodes[classes[t]]["pool"] != "external" and graph.degree(t) > 0}
    expected: dict[str, set[str]] = {}
    for t in touched:
        expected.setdefault(classes[t], set()).add(t)
    errors, planned = [], {}
    for b in plan.buffers:
        for m in b.members:
            if m in planned:
                errors.append(f"tensor {m!r} is in two buffers, {planned[m]!r} and {b.id!r}")
            planned[m] = b.id
        if m_missing := sorted(m for m in b.members if m not in classes):
            errors.append(f"buffer {b.id!r} holds {m_missing[0]!r}, which is not a tensor of "
                          "the graph")
            continue
        roots = {classes[m] for m in b.members}
        if len(roots) > 1:
            errors.append(f"buffer {b.id!r} joins tensors that do not share bytes: "
                          f"{', '.join(sorted(roots))}")
        if not 0 <= b.start < b.end <= plan.n_eo:
            errors.append(f"buffer {b.id!r}: lifespan [{b.start},{b.end}) is not inside the "
                          f"iteration [0,{plan.n_eo})")
        need = max((graph.nodes[m]["nbytes"] for m in b.members), default=1)
        if b.nbytes < need:
            errors.append(f"buffer {b.id!r} has {b.nbytes} bytes; its tensors need {need}")
    for root, members in expected.items():
        missing = sorted(m for m in members if m not in planned)
        if missing:
            errors.append(f"tensor {missing[0]!r} (bytes of {root!r}) is used but in no "
                          "planned buffer")
    return errors


def _replayed(graph: nx.DiGraph, classes: dict[str, str], op: str
              ) -> tuple[list[str], list[str]]:
    """A replay's reads and writes: its op's, less the persistent bytes the op updates."""
    updated = {classes[t] for t in graph.successors(op) if graph.nodes[t]["pool"] == "weight"}
    return ([t for t in graph.predecessors(op) if classes[t] not in updated],
            [t for t in graph.successors(op) if graph.nodes[t]["pool"] != "weight"])


def _uses(graph: nx.DiGraph, classes: dict[str, str], op_eo: dict[str, int],
          replays: list[tuple[str, int]]) -> dict[str, list[_Use]]:
    """Per alias root, its uses in EO order: ``reads`` when the EO needs the bytes as they
    were before it (replays run first in their EO, so bytes a replay rewrites are not)."""
    at: dict[str, dict[int, list[bool]]] = {}
    fresh: set[tuple[str, int]] = set()
    for op, e in replays:
        reads, writes = _replayed(graph, classes, op)
        for t in reads:
            use = at.setdefault(classes[t], {}).setdefault(e, [False, False])
            use[0] = use[0] or (classes[t], e) not in fresh
        for t in writes:
            at.setdefault(classes[t], {}).setdefault(e, [False, False])[1] = True
            fresh.add((classes[t], e))
    for op, e in op_eo.items():
        for t in graph.predecessors(op):
            use = at.setdefault(classes[t], {}).setdefault(e, [False, False])
            use[0] = use[0] or (classes[t], e) not in fresh
        for t in graph.successors(op):
            at.setdefault(classes[t], {}).setdefault(e, [False, False])[1] = True
    return {r: [_Use(e, rw[0], rw[1]) for e, rw in sorted(eos.items())]
            for r, eos in at.items()}


def _replay_errors(graph: nx.DiGraph, order, replays: list[tuple[str, int]],
                   classes: dict[str, str]) -> list[str]:
    """Replays are forward ops inside the iteration, and every read sees the version of its
    bytes it sees in the plain iteration."""
    errors = [f"replay of {op!r} at EO {e}: not a forward op of the graph"
              for op, e in replays if op not in order.op_eo
              or graph.nodes[op]["step"] != "forward"]
    errors += [f"replay of {op!r} at EO {e} is outside [0, {order.n_eo})"
               for op, e in replays if not 0 <= e < order.n_eo]
    if errors or not replays:
        return errors
    plain = sorted(order.op_eo, key=lambda op: (order.op_eo[op],
                                                 _STEP_RANK[graph.nodes[op]["step"]]))
    version: dict[str, int] = {}
    expect: dict[tuple[str, str], int] = {}
    wrote: dict[tuple[str, str], int] = {}
    for n, op in enumerate(plain):
        for t in graph.predecessors(op):
            expect[op, classes[t]] = version.get(classes[t], -1)
        for t in graph.successors(op):
            version[classes[t]] = wrote[op, classes[t]] = n
    runs = [((e, -1, i), op, True) for i, (op, e) in enumerate(replays)]
    runs += [((order.op_eo[op], _STEP_RANK[graph.nodes[op]["step"]], 0), op, False)
             for op in plain]
    version = {}
    for (e, _, _), op, again in sorted(runs, key=lambda r: r[0]):
        reads, writes = _replayed(graph, classes, op) if again else (
            list(graph.predecessors(op)), list(graph.successors(op)))
        for t in reads:
            if version.get(classes[t], -1) != expect[op, classes[t]]:
                what = f"the replay of {op!r} at EO {e}" if again else f"op {op!r} (EO {e})"
                errors.append(f"{what} reads {t!r} at another version than the plain "
                              "iteration: recomputation would change its result")
        for t in writes:
            version[classes[t]] = wrote[op, classes[t]]
    return errors


# --- bytes -------------------------------------------------------------------------------

def _layout_errors(plan) -> list[str]:
    errors, tops = [], [0]
    pieces = []  # (start, end, offset, nbytes, buffer)
    for b in plan.buffers:
        for p in b.pieces:
            if p.offset < 0 or p.offset % plan.alignment:
                errors.append(f"buffer {b.id!r}: piece [{p.start},{p.end}) at offset "
                              f"{p.offset} is not a non-negative multiple of the alignment "
                              f"{plan.alignment}")
            if p.offset + b.nbytes > plan.arena_bytes:
                errors.append(f"buffer {b.id!r}: piece [{p.start},{p.end}) bytes "
                              f"[{p.offset},{p.offset + b.nbytes}) end past the arena "
                              f"({plan.arena_bytes} bytes)")
            if not 0 <= p.start < p.end <= plan.n_eo:
                errors.append(f"buffer {b.id!r}: piece [{p.start},{p.end}) is not inside the "
                              f"iteration [0,{plan.n_eo})")
                continue  # left out of the sweeps below, which index EOs
            tops.append(p.offset + b.nbytes)
            pieces.append((p.start, p.end, p.offset, b.nbytes, b.id))
    if plan.arena_bytes != max(tops):
        errors.append(f"arena_bytes is {plan.arena_bytes} but the highest byte in use is "
                      f"{max(tops)}")
    errors += _overlaps(pieces)
    if plan.budget_bytes is not None:
        if plan.arena_bytes > plan.budget_bytes:
            errors.append(f"the arena ({plan.arena_bytes} bytes) exceeds the budget "
                          f"{plan.budget_bytes}")
        errors += _budget_errors(pieces, plan.n_eo, plan.budget_bytes)
    return errors


def _overlaps(pieces: list[tuple]) -> list[str]:
    """Pieces resident at a common EO that share bytes, by a sweep over EOs keeping the
    resident pieces sorted by offset (disjoint while nothing overlaps: neighbours suffice)."""
    events = sorted([(p[1], 0, i) for i, p in enumerate(pieces)]
                    + [(p[0], 1, i) for i, p in enumerate(pieces)])
    live: list[tuple[int, int]] = []  # (offset, piece index)
    errors = []
    for _, starts, i in events:
        key = (pieces[i][2], i)
        if not starts:
            live.pop(bisect.bisect_left(live, key))
            continue
        pos = bisect.bisect_left(live, key)
        for j in (pos - 1, pos):
            if 0 <= j < len(live):
                other = pieces[live[j][1]]
                lo, hi = max(other[2], key[0]), min(other[2] + other[3], key[0] + pieces[i][3])
                if lo < hi:
                    errors.append(f"buffer {pieces[i][4]!r} (EOs [{pieces[i][0]},"
                                  f"{pieces[i][1]})) and buffer {other[4]!r} (EOs [{other[0]},"
                                  f"{other[1]})) share bytes [{lo},{hi})")
        if errors:
            return errors  # one overlap poisons the neighbour argument; report the first
        live.insert(pos, key)
    return errors


def _budget_errors(pieces: list[tuple], n_eo: int, budget: int) -> list[str]:
    delta = np.zeros(n_eo + 1, dtype=np.int64)
    for start, end, _, nbytes, _ in pieces:
        delta[start] += nbytes
        delta[end] -= nbytes
    curve = np.cumsum(delta)[:n_eo]
    over = np.flatnonzero(curve > budget)
    if len(over):
        e = int(over[0])
        return [(f"{int(curve[e])} bytes resident at EO {e} exceed the budget {budget} "
                 f"({len(over)} EOs over)")]
    return []


# --- values ------------------------------------------------------------------------------

def _residency_errors(graph: nx.DiGraph, b, root: str, uses: list[_Use], plan) -> list[str]:
    """Walk the buffer's pieces and uses tracking where its current value is (``root``: the
    tensor whose bytes the buffer's members share)."""
    pieces = sorted(b.pieces, key=lambda p: p.start)
    name = b.id
    errors = [f"buffer {name!r}: pieces [{a.start},{a.end}) and [{c.start},{c.end}) overlap "
              "in time" for a, c in pairwise(pieces) if c.start < a.end]
    if errors or not pieces:
        return errors or ([f"buffer {name!r} is used but never resident"] if uses else [])
    persistent = graph.nodes[root]["pool"] == "weight"
    role = graph.nodes[root]["role"]
    fetch = {p.start_eo: p for p in plan.prefetches if p.buffer == name}
    evict = {e.after_eo: e for e in plan.evictions if e.buffer == name}
    starts_stored = persistent and pieces[0].start in fetch
    if persistent and not starts_stored and (len(pieces) > 1 or
                                             (pieces[0].start, pieces[0].end) != (0, plan.n_eo)):
        errors.append(f"weight {name!r} must be pinned in RAM for the whole iteration or start "
                      "and end it in storage")
    in_ram, stored = persistent and not starts_stored, starts_stored
    queue = sorted(uses, key=lambda u: u.eo)
    i = 0
    for k, p in enumerate(pieces):
        if k > 0 or starts_stored:
            f = fetch.get(p.start)
            if f is None:
                in_ram = False  # created afresh: the next use must write before reading
            else:
                in_ram = f.read and stored
                nxt = next((u for u in queue[i:] if u.eo >= p.start), None)
                if f.read and not stored:
                    errors.append(f"buffer {name!r}: the read back at EO {p.start} is stale "
                                  "(storage lacks the current bytes)")
                if nxt is not None and nxt.reads and not f.read:
                    errors.append(f"buffer {name!r}: the prefetch at EO {p.start} reads "
                                  f"nothing, but EO {nxt.eo} reads the bytes")
        elif role in _DATA_ROLES:
            in_ram = True  # fed from the data set when the piece starts
        while i < len(queue) and queue[i].eo < p.end:
            u = queue[i]
            i += 1
            if u.eo < p.start:
                errors.append(f"buffer {name!r} is used at EO {u.eo} but not resident")
                continue
            if u.reads and not in_ram:
                errors.append(f"buffer {name!r}: EO {u.eo} reads bytes that are not there "
                              "(never written, or lost in a trip to storage)")
            if u.writes:
                in_ram, stored = True, False
        last = k == len(pieces) - 1
        leaves = evict.get(p.end - 1)
        if last and not persistent and leaves is None:
            continue  # the buffer dies
        if last and persistent and not starts_stored:
            continue  # pinned: next iteration finds it in place
        if leaves is not None and leaves.write:
            if not in_ram:
                errors.append(f"buffer {name!r}: the eviction after EO {p.end - 1} writes "
                              "bytes that are not in RAM")
            stored = stored or in_ram
        again = next((u for u in queue[i:]), None)
        needed = again.reads if again is not None else (persistent and bool(uses)
                                                          and uses[0].reads)
        if needed and not stored:
            errors.append(f"buffer {name!r}: evicted after EO {p.end - 1} without writing "
                          "bytes that are read again")
        in_ram = False
    errors += [f"buffer {name!r} is used at EO {u.eo} but not resident" for u in queue[i:]]
    return errors


def _transfer_match_errors(plan) -> list[str]:
    """Every transfer names a piece boundary of its buffer and its buffer's size."""
    by_id = {b.id: b for b in plan.buffers}
    errors = []
    for e in plan.evictions:
        b = by_id.get(e.buffer)
        if b is None or not any(p.end == e.after_eo + 1 for p in b.pieces):
            errors.append(f"eviction of {e.buffer!r} after EO {e.after_eo} matches no piece end")
        elif e.nbytes != b.nbytes:
            errors.append(f"eviction of {e.buffer!r} moves {e.nbytes} bytes, not {b.nbytes}")
    for f in plan.prefetches:
        b = by_id.get(f.buffer)
        if b is None or not any(p.start == f.start_eo for p in b.pieces):
            errors.append(f"prefetch of {f.buffer!r} at EO {f.start_eo} matches no piece start")
        elif f.nbytes != b.nbytes:
            errors.append(f"prefetch of {f.buffer!r} moves {f.nbytes} bytes, not {b.nbytes}")
        elif not f.start_eo <= f.use_eo:
            errors.append(f"prefetch of {f.buffer!r} at EO {f.start_eo} serves EO {f.use_eo}, "
                          "before it starts")
    return errors
