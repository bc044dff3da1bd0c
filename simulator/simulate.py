"""Simulate a TrainingPlan on a device: graph + plan -> steps and transfers -> Timeline.

Every op becomes one ``Step`` at the EO the plan's order gives it (flops from the graph, bytes
touched = the tensors it reads and writes, buffers named by the plan). Memory follows the
plan's pieces: the arena becomes held as pieces first touch it (its high-water mark), so the
peak held is exactly the plan's arena and a plan that does not fit says at which op the device
ran out; bytes resident per role (or layer) are the pieces in RAM. The plan's evictions that
write and prefetches that read become the storage transfers. Nothing is planned or derived
again here: a plan made for another graph is refused.

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.plan_training import plan_training
>>> from trainplan.planner.zoo import get_model
>>> g = build_training_graph(get_model("mlp", batch=4))
>>> plan = plan_training(g)
>>> tl = simulate(g, plan, "raspberry-pi-4")
>>> tl.summary.arena_bytes == plan.arena_bytes, tl.summary.fits
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np

from trainplan.planner.graph import FED_ROLES, replay_edges
from trainplan.planner.identity import graph_identity, mismatch
from trainplan.planner.layers.base import AG
from trainplan.planner.order import ExecutionOrder
from trainplan.planner.split import graph_for
from trainplan.planner.training_plan import Replay, TrainingPlan
from trainplan.simulator.device import DeviceProfile, load_device
from trainplan.simulator.engine import Step, Transfer
from trainplan.simulator.errors import InvalidPlan
from trainplan.simulator.timeline import Timeline, simulate_events

# op type -> op class of the device's efficiency table; apply_gradient steps are "optimizer"
OP_TYPE_CLASS = {"fully_connected": "gemm", "multi_head_attention": "gemm", "lstm": "gemm",
                 "conv2d": "conv"}


def op_class(op_type: str, step: str) -> str:
    """The device efficiency class of an op (``elementwise`` unless listed)."""
    return "optimizer" if step == AG else OP_TYPE_CLASS.get(op_type, "elementwise")


def check_plan_for(graph: nx.DiGraph, plan: TrainingPlan) -> None:
    """Raise InvalidPlan naming both graphs when ``plan`` was made for another graph."""
    if not isinstance(plan, TrainingPlan):
        raise InvalidPlan(f"expected a TrainingPlan (planner.plan_training), got "
                          f"{type(plan).__name__}")
    wrong = mismatch(plan.graph, graph_identity(graph))
    if wrong:
        raise InvalidPlan(f"the plan was made for {wrong}; plan this graph again")


def graph_steps(graph: nx.DiGraph, eo: ExecutionOrder,
                buffer_of: Mapping[str, str] | None = None,
                replays: Sequence[Replay] = ()) -> list[Step]:
    """One Step per op in EO order, each EO's recomputations (``replays``) first; reads and
    writes name buffers by ``buffer_of`` (tensor -> buffer, a plan's ``member_buffer()``;
    without it the steps name no buffers)."""
    root = buffer_of or {}
    nodes = graph.nodes
    runs = [(r.eo, -1, i, r.op, *replay_edges(graph, r.op)) for i, r in enumerate(replays)]
    runs += [(e, 0, 0, op, list(graph.pred[op]), list(graph.succ[op]))
             for op, e in eo.op_eo.items()]
    runs.sort(key=lambda r: r[:3])
    # a batch's inputs and labels are written by the data feed every iteration, before their
    # first reader: that reader's step counts as writing them (storage no longer holds them)
    fed = {t for t, d in nodes(data=True) if d.get("role") in FED_ROLES
           and graph.in_degree(t) == 0}
    fed_by: dict[int, list[str]] = {}  # run index -> the fed tensors it reads first
    for k, (*_, rd, _wr) in enumerate(runs):
        for t in sorted(fed.intersection(rd)):
            fed.discard(t)
            fed_by.setdefault(k, []).append(t)
    steps = []
    for i, (e, again, _, op, rd, wr) in enumerate(runs):
        written = [*wr, *fed_by.get(i, ())]
        d = nodes[op]
        steps.append(Step(
            eo=e, kind=d["step"], layer=d["layer"],
            op_class=op_class(d["op_type"], d["step"]), flops=float(d["flops"]),
            # a split step's row copy declares its bytes (planner/split_boundary.py)
            bytes_touched=d.get("bytes_touched") or sum(nodes[t]["nbytes"] for t in rd + wr),
            gather_rows=int(d.get("gather_rows", 0)),
            reads=tuple(dict.fromkeys(root[t] for t in rd if t in root)),
            writes=tuple(dict.fromkeys(root[t] for t in written if t in root)), name=op,
            recompute=again < 0))
    return steps


def plan_transfers(plan: TrainingPlan) -> list[Transfer]:
    """Evictions that write and prefetches that read, as engine transfers. A write's deadline
    is the first EO at which another piece takes any of its bytes (next iteration's EOs count
    on past ``n_eo``), so the engine delays that reuse until the write is done."""
    cols = _piece_columns(plan)
    transfers = []
    for e in plan.evictions:
        if e.write:
            off = plan.buffer(e.buffer).pieces[e.piece].offset
            transfers.append(Transfer(e.buffer, "write", e.nbytes, e.after_eo,
                                      _reuse_eo(cols, e.after_eo, off, off + e.nbytes,
                                                plan.n_eo)))
    transfers += [Transfer(p.buffer, "read", p.nbytes, p.start_eo, p.use_eo)
                  for p in plan.prefetches if p.read]
    return transfers


def _piece_columns(plan: TrainingPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every piece's start EO, offset and end byte, sorted by start."""
    flat = np.array([(p.start, p.offset, p.offset + b.nbytes) for b in plan.buffers
                     for p in b.pieces], dtype=np.int64).reshape(-1, 3)
    flat = flat[np.argsort(flat[:, 0], kind="stable")]
    return flat[:, 0].copy(), flat[:, 1].copy(), flat[:, 2].copy()


def _reuse_eo(cols: tuple[np.ndarray, ...], after: int, lo: int, hi: int,
              n_eo: int) -> int | None:
    """First EO after ``after`` at which a piece takes bytes of [lo, hi): this iteration's
    first, else the next iteration's (+ n_eo). Scans blocks of doubling size: reuse is usually
    close."""
    starts, offs, ends = cols
    first = int(np.searchsorted(starts, after + 1))
    for begin, stop, shift in ((first, len(starts), 0), (0, first, n_eo)):
        b, width = begin, 64
        while b < stop:
            e = min(b + width, stop)
            hit = (offs[b:e] < hi) & (ends[b:e] > lo)
            i = int(hit.argmax())
            if hit[i]:
                return int(starts[b + i]) + shift
            b, width = e, width * 2
    return None


def held_curve(plan: TrainingPlan) -> np.ndarray:
    """Bytes of the arena held at each EO: the highest byte any piece has touched so far."""
    tops = np.zeros(plan.n_eo, dtype=np.int64)
    starts, _, ends = _piece_columns(plan)
    if len(starts):
        np.maximum.at(tops, starts.clip(0, plan.n_eo - 1), ends)
    return np.maximum.accumulate(tops)


def resident_by(graph: nx.DiGraph, plan: TrainingPlan, by: str = "role"
                ) -> dict[str, np.ndarray]:
    """Bytes resident (pieces in RAM) at each EO grouped by buffer ``role`` or owning
    ``layer``."""
    if by not in ("role", "layer"):
        raise ValueError(f"resident bytes group by 'role' or 'layer', not {by!r}")
    delta: dict[str, np.ndarray] = {}
    for b in plan.buffers:
        key = b.role if by == "role" else str(graph.nodes[b.id].get("layer") or "(none)")
        row = delta.setdefault(key, np.zeros(plan.n_eo + 1, dtype=np.int64))
        for p in b.pieces:
            row[p.start] += b.nbytes
            row[p.end] -= b.nbytes
    return {k: np.cumsum(v)[:plan.n_eo] for k, v in delta.items()}


def simulate(graph: nx.DiGraph, plan: TrainingPlan, device: DeviceProfile | str, *,
             iterations: int = 1, by: str = "role") -> Timeline:
    """Discrete-event simulation of ``iterations`` training iterations of ``graph`` under
    ``plan`` on ``device``; resident bytes grouped ``by`` role or layer."""
    device = load_device(device)
    graph = graph_for(graph, plan)  # the split graph, when the plan splits steps
    check_plan_for(graph, plan)
    meta: Mapping = {"model": plan.graph.model, "planner": plan.provenance.offsets,
                     "swap": plan.provenance.swap, "remat": plan.provenance.remat,
                     "order": plan.order.name, "batch": plan.graph.batch}
    steps = graph_steps(graph, plan.order, plan.member_buffer(), plan.recomputes)
    return simulate_events(steps, plan_transfers(plan), device,
                           iterations=iterations, n_eo=plan.n_eo, held=held_curve(plan),
                           live=plan.live_curve(), resident=resident_by(graph, plan, by),
                           budget_bytes=plan.budget_bytes, meta=meta)

