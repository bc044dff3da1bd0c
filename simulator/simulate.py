"""Simulate a planned training graph on a device: graph + plan -> steps -> Timeline.

Every op becomes one ``Step`` at its EO (flops from the graph, bytes touched = the tensors it
reads and writes). Memory follows the plan: the weight pool (weights, optimizer state) is
resident from the start, and the tensor pool's arena is allocated once and becomes resident as
tensors first touch it (its high-water mark), so the peak is exactly the plan's figure and a
plan that does not fit says at which op the device ran out. Without a swap schedule there are
no transfers. A plan made under a budget (``plan_graph_swap``) brings its own: its evictions
and prefetches become transfers, its one arena the resident curve (simulator/swap.py); other
schedules plug in as ``transfers`` (and ``resident_intervals`` for the live-bytes curves).

>>> from trainplan.planner.build import build_training_graph
>>> from trainplan.planner.plan_graph import plan_graph
>>> from trainplan.planner.zoo import get_model
>>> g = build_training_graph(get_model("mlp", batch=4))
>>> plan = plan_graph(g, "nntrainer_v1")
>>> tl = simulate(g, plan, "raspberry-pi-4")
>>> tl.summary.peak_resident_bytes == plan.record()["arena_bytes"], tl.summary.fits
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np

from trainplan.planner.layers.base import AG
from trainplan.planner.order import ExecutionOrder, Lifespan, execution_order, lifespans
from trainplan.simulator.device import DeviceProfile, load_device
from trainplan.simulator.engine import Step, Transfer
from trainplan.simulator.errors import InvalidPlan
from trainplan.simulator.swap import is_swap_plan, swap_inputs
from trainplan.simulator.timeline import Timeline, simulate_events

# op type -> op class of the device's efficiency table; apply_gradient steps are "optimizer"
OP_TYPE_CLASS = {"fully_connected": "gemm", "multi_head_attention": "gemm", "lstm": "gemm",
                 "conv2d": "conv"}
PLANNED_POOLS = ("weight", "tensor")


def op_class(op_type: str, step: str) -> str:
    """The device efficiency class of an op (``elementwise`` unless listed)."""
    return "optimizer" if step == AG else OP_TYPE_CLASS.get(op_type, "elementwise")


def graph_steps(graph: nx.DiGraph, eo: ExecutionOrder,
                spans: Mapping[str, Lifespan] | None = None) -> list[Step]:
    """One Step per op in EO order; reads/writes name buffers (alias roots)."""
    spans = lifespans(graph, eo) if spans is None else spans
    root = {m: s.tensor for s in spans.values() for m in s.members}
    nodes, pred, succ = graph.nodes, graph.pred, graph.succ
    steps = []
    for op in sorted(eo.op_eo, key=eo.op_eo.__getitem__):
        d = nodes[op]
        rd, wr = list(pred[op]), list(succ[op])
        steps.append(Step(
            eo=eo.op_eo[op], kind=d["step"], layer=d["layer"],
            op_class=op_class(d["op_type"], d["step"]), flops=float(d["flops"]),
            bytes_touched=sum(nodes[t]["nbytes"] for t in rd + wr),
            gather_rows=int(d.get("gather_rows", 0)),
            reads=tuple(dict.fromkeys(root[t] for t in rd)),
            writes=tuple(dict.fromkeys(root[t] for t in wr)), name=op))
    return steps


def resident_curve(spans: Mapping[str, Lifespan], plan, n_eo: int) -> np.ndarray:
    """Bytes resident at each EO: the weight pool from the start plus the tensor pool's
    high-water mark (highest byte touched so far). Raises InvalidPlan for an unplanned buffer."""
    tops = np.zeros(n_eo, dtype=np.int64)
    for s in spans.values():
        if s.pool not in PLANNED_POOLS:
            continue
        offsets = getattr(plan, s.pool).offsets
        if s.tensor not in offsets:
            raise InvalidPlan(f"the plan has no offset for {s.pool}-pool buffer {s.tensor!r}; "
                              "was it planned for this graph, batch and order?")
        if s.pool == "tensor":
            tops[s.start] = max(tops[s.start], offsets[s.tensor] + s.nbytes)
    return plan.weight.arena_bytes + np.maximum.accumulate(tops)


def live_curves(graph: nx.DiGraph, spans: Mapping[str, Lifespan], n_eo: int, by: str = "role",
                resident_intervals: Mapping[str, Sequence[tuple[int, int]]] | None = None,
                ) -> dict[str, np.ndarray]:
    """Live bytes at each EO grouped by tensor ``role`` or owning ``layer``; a swapped tensor
    counts only over its ``resident_intervals`` ([start, end) EOs) when given."""
    if by not in ("role", "layer"):
        raise ValueError(f"live bytes group by 'role' or 'layer', not {by!r}")
    delta: dict[str, np.ndarray] = {}
    for s in spans.values():
        if s.pool not in PLANNED_POOLS:
            continue
        key = s.role if by == "role" else str(graph.nodes[s.tensor].get("layer") or "(none)")
        row = delta.setdefault(key, np.zeros(n_eo + 1, dtype=np.int64))
        for a, b in (resident_intervals or {}).get(s.tensor, [(s.start, s.end)]):
            row[a] += s.nbytes
            row[b] -= s.nbytes
    return {k: np.cumsum(v)[:n_eo] for k, v in delta.items()}


def simulate(graph: nx.DiGraph, plan, device: DeviceProfile | str, *,
             order: str | ExecutionOrder = "nntrainer", iterations: int = 1,
             transfers: Sequence[Transfer] = (), budget_bytes: int | None = None,
             live_by: str = "role",
             resident_intervals: Mapping[str, Sequence[tuple[int, int]]] | None = None,
             ) -> Timeline:
    """Discrete-event simulation of ``iterations`` training iterations of a planned graph
    (a GraphPlan, or a GraphSwapPlan whose schedule supplies transfers and the budget)."""
    device = load_device(device)
    eo = order if isinstance(order, ExecutionOrder) else execution_order(graph, order)
    spans = lifespans(graph, eo)
    meta = {"model": graph.graph.get("model", ""), "planner": getattr(plan, "planner", ""),
            "order": eo.name, "batch": graph.graph.get("batch")}
    transfers = list(transfers)
    if is_swap_plan(plan):
        arena = plan.arena
        if arena.schedule.n_eo != eo.n_eo:
            raise InvalidPlan(f"the swap plan has {arena.schedule.n_eo} EOs, the graph under "
                              f"order {eo.name!r} has {eo.n_eo}: planned for another graph?")
        moves, resident, intervals = swap_inputs(arena, eo.n_eo)
        transfers += moves
        resident_intervals = resident_intervals or intervals
        budget_bytes = arena.schedule.budget_bytes if budget_bytes is None else budget_bytes
        meta["planner"] = f"{arena.plan.planner} + {plan.swap} swap"
    else:
        resident = resident_curve(spans, plan, eo.n_eo)
    return simulate_events(
        graph_steps(graph, eo, spans), transfers, device, iterations=iterations, n_eo=eo.n_eo,
        resident=resident,
        live=live_curves(graph, spans, eo.n_eo, live_by, resident_intervals),
        budget_bytes=budget_bytes, meta=meta)
